"""kpis: the life cycle KPIs of every model, from the audit trail, published as Prefect artifacts (scheduled)."""

from __future__ import annotations

from typing import Any

from prefect import flow

from modelops.lineage_events import STAGE_HOOKS
from modelops.platform import get_platform
from modelops.spec import load_all_specs
from tasks.reports import KPI_ARTIFACT, publish_kpis_task


@flow(name="kpis", log_prints=True, **STAGE_HOOKS)
def kpis() -> dict[str, Any]:
    """Lead time, approval wait, monitoring coverage, revalidation and retrains/rollbacks per month, as the
    artifact `modelops-kpis` (what `modelops kpis` prints)."""
    found = publish_kpis_task(get_platform(), load_all_specs())
    print(f"KPIs of {found['models']} models published as artifact {KPI_ARTIFACT}")
    return found
