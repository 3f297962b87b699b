"""Running the platform like production on one machine: a Prefect server, a runner that serves the stage
deployments of prefect.yaml (schedules and triggers included) and the MLflow UI, started and stopped together."""
