"""ModelOps: a Prefect-native platform that takes every model through register, validate, approve,
deploy, monitor, retrain and retire, with MLflow as the catalog and a governance store as the record."""

__version__ = "0.1.0"
