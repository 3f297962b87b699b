"""The governance store: what MLflow does not hold (audit trail, approvals, deployments, monitoring results
over time, the prediction log index and lineage), in SQLAlchemy 2 tables migrated by Alembic."""
