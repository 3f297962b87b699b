"""report: publish a model's compliance report (model card, evidence, history, findings) as a Prefect artifact."""

from __future__ import annotations

from prefect import flow
from pydantic import BaseModel

from flows.parameters import ModelName
from modelops.lineage_events import STAGE_HOOKS
from modelops.platform import get_platform
from modelops.spec import load_spec
from tasks.reports import compliance_artifact_key, publish_compliance_report_task


class Reported(BaseModel):
    model: str
    artifact: str
    markdown: str


@flow(name="report", log_prints=True, **STAGE_HOOKS)
def report(model: ModelName) -> Reported:
    """The same report `modelops report <model>` writes, as the Markdown artifact `compliance-<model>`."""
    markdown = publish_compliance_report_task(get_platform(), load_spec(model))
    print(f"{model}: compliance report published as artifact {compliance_artifact_key(model)}")
    return Reported(model=model, artifact=compliance_artifact_key(model), markdown=markdown)
