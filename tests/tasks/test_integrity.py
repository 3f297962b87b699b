"""What is loaded is byte for byte what was pinned: a file swapped after the pin check (a race) is caught."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import skops.io
from sklearn.dummy import DummyClassifier

from modelops.errors import TamperedModelError
from modelops.spec import SecuritySpec, load_spec
from tasks.integrity import _scanned_what_was_pinned, content_hash, manifest_of
from tasks.security import scan_model_dir
from tests.tasks.model_dirs import fitted, save
from tests.tasks.test_approval import GOOD


def test_a_model_file_swapped_between_pin_check_and_scan_is_refused(tmp_path: Path) -> None:
    model_dir = save(fitted(), tmp_path / "m")
    manifest = manifest_of(model_dir)
    governed = replace(GOOD, manifest=manifest, content_hash=content_hash(manifest))
    # the pin check has just read the genuine files; now the file is replaced, before the scan reads it
    (model_dir / "model.skops").write_bytes(skops.io.dumps(DummyClassifier().fit([[0]], [1])))
    scan = scan_model_dir(model_dir, SecuritySpec())
    assert scan.passed  # a clean file of trusted types: only the pin can tell
    with pytest.raises(TamperedModelError, match="model.skops changed while it was being checked"):
        _scanned_what_was_pinned(load_spec("flight-delay"), governed, model_dir, scan, "scoring")


def test_the_genuine_files_pass_the_same_check(tmp_path: Path) -> None:
    model_dir = save(fitted(), tmp_path / "m")
    manifest = manifest_of(model_dir)
    governed = replace(GOOD, manifest=manifest, content_hash=content_hash(manifest))
    scan = scan_model_dir(model_dir, SecuritySpec())
    _scanned_what_was_pinned(load_spec("flight-delay"), governed, model_dir, scan, "scoring")
