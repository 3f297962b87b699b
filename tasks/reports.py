"""Publishing governance reports as Prefect artifacts: a model's compliance report and the life cycle KPIs."""

from __future__ import annotations

from typing import Any

from modelops.compliance import compliance_report, to_markdown
from modelops.kpis import Kpis, compute_kpis, kpis_markdown
from modelops.platform import Platform
from modelops.spec import LifecycleSpec
from tasks import as_task
from tasks.stage_artifacts import artifact_key

KPI_ARTIFACT = "modelops-kpis"


def compliance_artifact_key(model: str) -> str:
    return artifact_key("compliance", model)


def publish_compliance_report(platform: Platform, spec: LifecycleSpec) -> str:
    """The model's compliance report as a Markdown artifact (the newest under its key), its monitoring history
    plotted inline (a data: URI the Prefect UI displays); returns the Markdown."""
    from prefect.artifacts import create_markdown_artifact

    markdown = to_markdown(compliance_report(platform, spec))
    create_markdown_artifact(key=compliance_artifact_key(spec.name), markdown=markdown,
                             description=f"Compliance report of {spec.name} (owner {spec.owner}, risk tier "
                                         f"{spec.risk_tier.value})")
    return markdown


def publish_kpis(platform: Platform, specs: list[LifecycleSpec]) -> dict[str, Any]:
    """The KPIs as a Markdown artifact and their serving models as a table artifact; returns them as data."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    kpis: Kpis = compute_kpis(platform, specs)
    create_markdown_artifact(key=KPI_ARTIFACT, markdown=kpis_markdown(kpis),
                             description=f"Life cycle KPIs of {kpis.models} models")
    create_table_artifact(key=f"{KPI_ARTIFACT}-serving", table=[vars(s) for s in kpis.serving],
                          description="Serving champions: monitoring and revalidation")
    return kpis.as_dict()


publish_compliance_report_task = as_task(publish_compliance_report)
publish_kpis_task = as_task(publish_kpis)
