"""The static part of prefect.yaml: stage deployments, triggers and comments.

`modelops deployments --write` renders prefect.yaml from this text and the specs in configs/models/: each line
`<<schedules:STAGE>>` becomes the per-model schedules of that stage's deployment. Edit the stage deployments
here, the schedules in the specs, never prefect.yaml itself (a test fails when it differs from the render).
"""

from __future__ import annotations

TEMPLATE = """\
# Rendered from modelops/services/prefect_template.py and the specs in configs/models/ by
# `modelops deployments --write`: edit those, not this file (`modelops deployments --check` compares).
#
# One deployment per life cycle stage (not per model): the model name is a parameter.
# Events chain the stages: registered -> validate -> approve -> deploy, and drift-detected /
# performance-degraded / bias-detected -> retrain. The monitor deployment runs on each model's schedule (its
# spec's cron).
name: modelops
prefect-version: 3.9.1

# What a worker does before each run: step into the project's checkout, resolved from the environment of the
# worker's machine at run time (each machine sets MODELOPS_PROJECT_DIR). Where workers have no checkout, replace it
# with prefect.deployments.steps.git_clone (repository, branch, access token from a Secret block).
pull:
  - prefect.deployments.steps.set_working_directory:
      directory: "{{ $MODELOPS_PROJECT_DIR }}"

definitions:
  # The process work pool of `modelops up --workers N` (the runner of a plain `modelops up` ignores it).
  work_pool: &stage_pool
    name: modelops-stages
  model_params: &model_params
    model: "{{ event.payload.model }}"
    version: "{{ event.payload.version }}"

deployments:
  - name: register
    entrypoint: flows/register.py:register
    description: Train through the spec's entry point (or take a model URI) and register a version.
    tags: [modelops, stage]
    work_pool: *stage_pool
<<concurrency:register>>

  - name: validate
    entrypoint: flows/validate.py:validate
    description: Security scan, schema, holdout metrics, data quality and fairness gates.
    tags: [modelops, stage]
    work_pool: *stage_pool
<<concurrency:validate>>
    triggers:
      - type: event
        enabled: true
        expect: [modelops.model.registered]
        match: {prefect.resource.id: "modelops.model.*", modelops.chain: continue}
        for_each: [prefect.resource.id]
        parameters: *model_params

  - name: approve
    entrypoint: flows/approve.py:approve
    description: Apply the spec's approval policy (automatic for allowed risk tiers, else pending a human).
    tags: [modelops, stage]
    work_pool: *stage_pool
<<concurrency:approve>>
    triggers:
      - type: event
        enabled: true
        expect: [modelops.model.validated]
        match: {prefect.resource.id: "modelops.model.*", modelops.chain: continue}
        for_each: [prefect.resource.id]
        parameters: *model_params

  - name: deploy
    entrypoint: flows/deploy.py:deploy
    description: Make an approved version @champion (or @challenger) and record the deployment.
    tags: [modelops, stage]
    work_pool: *stage_pool
<<concurrency:deploy>>
    triggers:
      - type: event
        enabled: true
        expect: [modelops.model.approved]
        match: {prefect.resource.id: "modelops.model.*", modelops.chain: continue}
        for_each: [prefect.resource.id]
        parameters: *model_params

  - name: score
    entrypoint: flows/score.py:score
    description: Score a Parquet/CSV batch with the champion and keep the prediction log.
    tags: [modelops, stage]
    work_pool: *stage_pool
<<concurrency:score>>

  - name: monitor
    entrypoint: flows/monitor.py:monitor
    description: Drift and performance over the newest window of the champion's prediction log.
    tags: [modelops, stage]
    work_pool: *stage_pool
<<concurrency:monitor>>
    # One schedule per model: its spec's monitoring.cron (UTC).
<<schedules:monitor>>

  - name: sweep
    entrypoint: flows/sweep.py:sweep
    description: Drift verdicts of every model in one run (statistics only; full reports where a model breaches).
    tags: [modelops, stage]
    work_pool: *stage_pool
<<concurrency:sweep>>
    schedules:
      - cron: "0 * * * *"
        timezone: UTC
        slug: sweep-hourly

  - name: retrain
    entrypoint: flows/retrain.py:retrain
    description: Retrain on recent data, validate, compare with the champion, promote the winner.
    tags: [modelops, stage]
    work_pool: *stage_pool
<<concurrency:retrain>>
    triggers:
      - type: event
        enabled: true
        expect: [modelops.model.drift-detected, modelops.model.performance-degraded,
                 modelops.model.bias-detected]
        # Only breaches that ask for retraining carry this label (once per model per retrain.cooldown_hours).
        match: {prefect.resource.id: "modelops.model.*", modelops.retrain: requested}
        for_each: [prefect.resource.id]
        parameters:
          model: "{{ event.payload.model }}"

  - name: retire
    entrypoint: flows/retire.py:retire
    description: Take a version out of service (dry run by default); artifacts and audit trail stay.
    tags: [modelops, stage]
    work_pool: *stage_pool
<<concurrency:retire>>

  - name: report
    entrypoint: flows/report.py:report
    description: A model's compliance report (model card, approvals with evidence, history, findings) as an artifact.
    tags: [modelops, governance]
    work_pool: *stage_pool
<<concurrency:report>>

  - name: kpis
    entrypoint: flows/kpis.py:kpis
    description: Life cycle KPIs of every model from the audit trail, published as an artifact.
    tags: [modelops, governance]
    work_pool: *stage_pool
<<concurrency:kpis>>
    schedules:
      - cron: "30 5 * * *"
        timezone: UTC
        slug: kpis-daily
"""
