"""The endpoint model kind's rules that need no running service: what an endpoint spec may say, and what the scan
of a logged endpoint description refuses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from modelops.spec import EndpointSpec, LifecycleSpec, SecuritySpec
from tasks.model_kinds import ScanContext
from tasks.model_kinds.endpoint_kind import EndpointModel, save
from tasks.security import scan_model_dir

ROOT = Path(__file__).resolve().parents[2]


def example() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "examples" / "endpoint" / "flight-delay-vendor.yaml").read_text())


def endpoint(**changes: Any) -> EndpointSpec:
    return EndpointSpec.model_validate({**example()["endpoint"], **changes})


@pytest.mark.parametrize("url, reason", [
    ("https://user:secret@scoring.example.com", "carries a user name or password"),
    ("file:///etc/passwd", "scheme 'file' is refused"),
    ("http://scoring.example.com", "plain http to another machine"),
    ("https://scoring.example.com/?token=abc", "has a query or fragment"),
    ("https://", "names no host"),
])
def test_an_endpoint_url_that_could_leak_or_reach_anything_is_refused(url: str, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        endpoint(url=url)


@pytest.mark.parametrize("url, allow_http", [("http://127.0.0.1:8123", False), ("http://localhost:9000", False),
                                             ("http://[::1]:8123", False), ("http://scoring.internal", True),
                                             ("https://scoring.example.com/base", False)])
def test_https_http_to_this_machine_and_allowed_http_are_accepted(url: str, allow_http: bool) -> None:
    assert endpoint(url=url, allow_http=allow_http).url == url


def test_the_infer_url_names_the_vendor_model_and_its_version() -> None:
    assert endpoint(url="https://s.example.com/", model_version="3").infer_url() == \
        "https://s.example.com/v2/models/flight-delay-vendor/versions/3/infer"


@pytest.mark.parametrize("change, reason", [
    (lambda s: s["training"].update(entry_point="examples.flight_delay:train"), "nothing trains here"),
    (lambda s: s["monitoring"].update(on_breach=["alert", "retrain"]), "a breach cannot retrain it"),
    (lambda s: s.pop("endpoint"), "has no endpoint section"),
    (lambda s: s["training"].update(kind="sklearn", entry_point="examples.flight_delay:train"),
     "set training.kind to 'endpoint' or remove the section"),
])
def test_an_inconsistent_endpoint_spec_is_refused_with_the_fix(change: Any, reason: str) -> None:
    spec = example()
    change(spec)
    with pytest.raises(ValidationError, match=reason):
        LifecycleSpec.model_validate(spec)


def test_a_description_naming_another_credentials_block_is_refused(tmp_path: Path) -> None:
    """A crafted file cannot borrow the token of another block: it names only the spec's."""
    spec = LifecycleSpec.model_validate(example())
    save(tmp_path, EndpointModel(endpoint(credentials_block="payments-api-token"), "classification"))
    scan = scan_model_dir(tmp_path, SecuritySpec(), ScanContext.of(spec))
    assert not scan.passed
    assert any("credentials_block 'payments-api-token' is not the spec's" in f for f in scan.findings), scan.findings


def test_the_spec_s_own_description_passes_the_scan(tmp_path: Path) -> None:
    spec = LifecycleSpec.model_validate(example())
    save(tmp_path, EndpointModel(spec.endpoint, spec.task))  # type: ignore[arg-type]
    scan = scan_model_dir(tmp_path, SecuritySpec(), ScanContext.of(spec))
    assert scan.passed and scan.kind == "endpoint", scan.findings
