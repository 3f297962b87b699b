"""The life cycle spec: one YAML file per model in configs/models/<name>.yaml, validated on load.

A bad file fails with its path, the field and the reason, before anything else runs.
"""

from __future__ import annotations

import importlib
import re
from datetime import date
from enum import Enum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, WithJsonSchema, field_validator,
    model_validator,
)

from modelops.errors import SpecError
from modelops.lifecycle import Stage

MODEL_NAME = r"^[a-z][a-z0-9-]{1,62}$"
DOTTED_NAME = r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$"  # module.Class, e.g. sklearn.tree._tree.Tree
# Metrics where a larger value is better; everything else (errors, losses) is better when smaller.
HIGHER_IS_BETTER = {"roc_auc", "accuracy", "f1", "precision", "recall", "r2", "average_precision"}
# Evidently's drift methods and how each turns a score into a verdict (checked against evidently 0.7's code):
# distances drift when score >= threshold, p-values when p < threshold, except K-S which drifts at p <= threshold.
DISTANCE_METHODS = {"wasserstein", "jensenshannon", "kl_div", "psi", "hellinger"}
P_VALUE_METHODS = {"ks", "chisquare", "z", "t_test", "mannw", "anderson", "cramer_von_mises", "fisher_exact", "g_test",
                   "epps_singleton"}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RiskTier(str, Enum):
    low = "low"
    medium = "medium"
    high = "high"


class Window(Strict):
    """A half-open time window [start, end) over the data's timestamp column."""

    start: date = Field(description="First day in the window (YYYY-MM-DD).")
    end: date = Field(description="First day after the window (YYYY-MM-DD), later than start.")

    @model_validator(mode="after")
    def _ordered(self) -> "Window":
        if self.end <= self.start:
            raise ValueError(f"end ({self.end}) must be after start ({self.start})")
        return self


class Features(Strict):
    numerical: list[str] = Field(default_factory=list, description="Numeric input columns.")
    categorical: list[str] = Field(default_factory=list, description="Categorical input columns.")

    @property
    def all(self) -> list[str]:
        return [*self.numerical, *self.categorical]

    @model_validator(mode="after")
    def _non_empty_and_disjoint(self) -> "Features":
        if not self.all:
            raise ValueError("at least one numerical or categorical feature is required")
        both = set(self.numerical) & set(self.categorical)
        if both:
            raise ValueError(f"columns listed as both numerical and categorical: {sorted(both)}")
        return self


class DataSpec(Strict):
    loader: str = Field(description="Importable 'module:function(start, end) -> DataFrame' giving rows of a window.")
    timestamp_column: str = Field(description="Column with each row's time (datetime or ISO 8601 text); windows, "
                                              "holdouts and monitoring cut on it.")
    id_column: str = Field(description="Business key of a row; becomes the prediction id in the prediction log.")
    target: str = Field(description="Column to predict: 0/1 for classification, a number for regression.")
    features: Features = Field(description="Input columns of the model, by kind.")
    protected_attributes: list[str] = Field(
        default_factory=list,
        description="Feature columns the model's bias is measured across, at validation and in monitoring, "
                    "with validation.fairness's limits (required when any is listed).")


class EndpointSpec(Strict):
    """A model that runs outside the platform: a vendor's or another team's HTTP scoring endpoint (kind 'endpoint').
    Nothing secret is written here: the bearer token lives in the Prefect Secret block `credentials_block` names."""

    url: str = Field(description="Base URL of the scoring service, e.g. https://scoring.example.com; the platform "
                                 "posts to {url}/v2/models/{model_name}/infer. https only (plain http only to this "
                                 "machine, or with allow_http); no user or password in it; redirects are never "
                                 "followed.")
    protocol: Literal["v2"] = Field("v2", description="v2: the KServe / Open Inference Protocol v2 (one input tensor "
                                                      "per feature column, named like the column).")
    model_name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$",
                            description="The model's name on the endpoint (the {model_name} of the path).")
    model_version: str | None = Field(
        None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        description="The model's version on the endpoint: calls go to {url}/v2/models/{model_name}/versions/"
                    "{model_version}/infer. A new vendor version here registers as a new platform version; none: "
                    "whatever the endpoint serves under model_name.")
    output: str = Field(min_length=1, description="Name of the output tensor holding the scores.")
    positive_index: int = Field(1, ge=0, description="Classifiers whose output has one column per class: the "
                                                     "column of the positive class's probability (a 1-D output is "
                                                     "that probability itself).")
    timeout_seconds: float = Field(10.0, gt=0, le=300, description="Limit of one request to the endpoint.")
    max_rows_per_request: int = Field(1000, ge=1, le=100_000, description="Rows sent in one request; larger "
                                                                          "batches are split.")
    credentials_block: str | None = Field(
        None, pattern=r"^[a-z0-9][a-z0-9-]*$",
        description="Name of the Prefect Secret block whose value is the endpoint's bearer token (sent as "
                    "'Authorization: Bearer <token>'); none: the endpoint is called without credentials.")
    allow_http: bool = Field(False, description="Allow plain http to a host other than this machine (the token and "
                                                "the inputs then cross the network unencrypted).")

    @model_validator(mode="after")
    def _safe_url(self) -> "EndpointSpec":
        problem = endpoint_url_problem(self.url, self.allow_http)
        if problem:
            raise ValueError(problem)
        return self

    def infer_url(self) -> str:
        version = f"/versions/{self.model_version}" if self.model_version else ""
        return f"{self.url.rstrip('/')}/v2/models/{self.model_name}{version}/infer"


def endpoint_url_problem(url: str, allow_http: bool) -> str | None:
    """Why an endpoint URL may not be called, or None: only https (http to this machine or when allowed), a host,
    no credentials in the URL (they would be logged and stored with it), no query or fragment."""
    import ipaddress
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises for a port that is not a number
    except ValueError as exc:
        return f"endpoint url {url!r} is not a URL ({exc})"
    if parts.scheme not in {"https", "http"}:
        return (f"endpoint url scheme {parts.scheme!r} is refused: only https (or http to this machine) is called; "
                "give the service's https address")
    if parts.username is not None or parts.password is not None:
        return ("the endpoint url carries a user name or password, which would be stored and logged with the model: "
                "remove it and put the token in a Prefect Secret block named by endpoint.credentials_block")
    if not host:
        return f"endpoint url {url!r} names no host"
    if parts.query or parts.fragment:
        return f"endpoint url {url!r} has a query or fragment: give the service's base URL only"
    if parts.scheme == "http" and not allow_http:
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            return (f"endpoint url {url!r} is plain http to another machine: the token and the inputs would cross "
                    "the network unencrypted; use https (or set endpoint.allow_http: true to accept that)")
    return None


class TrainingSpec(Strict):
    entry_point: str | None = Field(
        None, description="Importable 'module:function(features, target, params) -> estimator'. Required, except "
                          "for kind 'endpoint' (nothing is trained: leave it out).")
    kind: Literal["sklearn", "xgboost", "lightgbm", "onnx", "custom", "endpoint"] = Field(
        "sklearn",
        description="What the trainer returns, and so how it is logged, scanned and loaded (README 'Model kinds'): "
                    "a scikit-learn estimator (skops), an XGBoost booster or model (JSON/UBJ), a LightGBM booster "
                    "or model (text format), an ONNX ModelProto, or an instance of training.model_class; 'endpoint': "
                    "a model served elsewhere over HTTP, described by the spec's endpoint section. "
                    "Nothing is ever pickled.",
    )
    model_class: str | None = Field(
        None,
        description="kind 'custom' only: the reviewed 'module:Class' the model is; its files hold only arrays and "
                    "this class rebuilds it (Class.from_arrays). A file naming another class is refused.",
    )
    params: dict[str, Any] = Field(default_factory=dict, description="Passed as-is to the training entry point.")
    window: Window = Field(description="Rows of the first version's training; its holdout follows it.")
    pip_requirements: list[str] = Field(
        default_factory=lambda: ["scikit-learn==1.9.1", "pandas==2.3.3", "numpy==2.4.6", "skops"],
        description="Explicit pip requirements logged with the model (skips MLflow's slow inference).",
    )


class Bound(Strict):
    min: float | None = Field(None, description="Floor: a lower value fails.")
    max: float | None = Field(None, description="Ceiling: a higher value fails.")

    @model_validator(mode="after")
    def _one_side(self) -> "Bound":
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        return self


class SecuritySpec(Strict):
    trusted_types: list[Annotated[str, Field(pattern=DOTTED_NAME)]] = Field(
        default_factory=list,
        description="Exact dotted names of classes a skops model file may contain, besides the platform's "
                    "allow-list (tasks.security.PLATFORM_TRUSTED_TYPES) and skops' default classes. "
                    "Add a class only after reviewing it; a function or an unknown name fails the scan.",
    )
    allow_pickle: bool = Field(False, description="Pickle can run arbitrary code on load: refused unless set.")

    @model_validator(mode="before")
    @classmethod
    def _no_module_prefixes(cls, data: Any) -> Any:
        # Strict models would only say "extra inputs are not permitted"; say what replaced the field and why.
        if isinstance(data, dict) and "trusted_module_prefixes" in data:
            raise ValueError("trusted_module_prefixes is no longer supported: a module prefix trusted every "
                             "function under it (numpy.testing's runstring runs code); list the exact class "
                             "names you reviewed in trusted_types instead")
        return data


class DataQualitySpec(Strict):
    mostly: float = Field(0.99, gt=0, le=1, description="Share of rows each expectation must hold for.")
    range_quantiles: tuple[float, float] = Field(
        (0.001, 0.999), description="Quantiles of the training data that bound each numeric feature's expected range.")
    range_margin: float = Field(0.5, ge=0, description="Widen learned ranges by this share of their span.")
    min_success_share: float = Field(1.0, gt=0, le=1, description="Share of expectations that must pass.")


# Bias metrics by task. Classification: fairlearn's differences of the thresholded predictions between groups.
# Regression: the gap between the largest and smallest mean absolute error of the groups, relative to the MAE of
# all rows (0.25: the worst-served group's error is a quarter of the overall error above the best-served one's).
FAIRNESS_METRICS = {"classification": ("demographic_parity_difference", "equalized_odds_difference"),
                    "regression": ("mae_gap",)}
FairnessMetric = Literal["demographic_parity_difference", "equalized_odds_difference", "mae_gap"]


class FairnessSpec(Strict):
    limits: dict[FairnessMetric, Annotated[float, Field(gt=0)]] = Field(
        min_length=1,
        description="Metric -> the largest gap between groups that passes, judged per protected attribute at "
                    "validation (holdout) and in monitoring (labelled predictions). Classification: "
                    "demographic_parity_difference, equalized_odds_difference; regression: mae_gap (largest minus "
                    "smallest group MAE, relative to the overall MAE).")
    min_group_rows: int = Field(30, ge=1, description="Groups with fewer rows are left out of a gap (too few to "
                                                      "measure); fewer than two groups left: the gap cannot be "
                                                      "computed, which fails validation.")
    warn_ratio: float = Field(0.8, gt=0, le=1, description="Monitoring warns when a gap passes this share of its "
                                                           "limit, and breaches past the limit.")

    @model_validator(mode="before")
    @classmethod
    def _no_single_metric(cls, data: Any) -> Any:
        # Strict models would only say "extra inputs are not permitted"; say what replaced the fields.
        if isinstance(data, dict) and ({"metric", "max_difference"} & set(data)):
            raise ValueError("metric/max_difference were replaced by limits, one per metric: write "
                             "limits: {demographic_parity_difference: 0.2}")
        return data


class ValidationSpec(Strict):
    holdout_days: int = Field(14, ge=1, le=366, description="Holdout: the days right after a version's training window.")
    metric_thresholds: dict[str, Bound] = Field(description="Metric floors (min) and ceilings (max) on the holdout.")
    data_quality: DataQualitySpec = Field(default_factory=DataQualitySpec,
                                          description="Expectations learned from training data, run on the holdout.")
    security: SecuritySpec = Field(default_factory=SecuritySpec, description="The scan of the model file.")
    fairness: FairnessSpec | None = Field(None, description="Bias limits over data.protected_attributes, at "
                                                            "validation and in monitoring. Required when protected "
                                                            "attributes are listed; none without them.")
    revalidate_days: int | None = Field(
        365, ge=1, description="A serving version is due for revalidation this many days after its last "
                               "validation (`modelops kpis` counts those past due); none: never due.")


class ApprovalSpec(Strict):
    automatic_for_tiers: list[RiskTier] = Field(
        default_factory=lambda: [RiskTier.low, RiskTier.medium],
        description="Risk tiers approved by policy when every rule passes; other tiers wait for a human.",
    )
    require_validation_passed: bool = Field(True, description="Reject a version whose validation has not passed.")
    min_metrics: dict[str, float] = Field(
        default_factory=dict,
        description="Approval limits on the holdout metrics, stricter than validation's. Each follows its metric's "
                    "direction: a floor where higher is better (roc_auc, accuracy, f1, r2 ...), a ceiling for "
                    "errors and losses (mae, rmse, log_loss ...): {mae: 3} rejects a holdout mae above 3.")
    human_approvals: int | None = Field(None, ge=1, le=5, description="Approvals by distinct people this model "
                                                                      "needs, when more than its risk tier's policy "
                                                                      "(configs/approval-policies.yaml) asks.")
    timeout_hours: float | None = Field(None, gt=0, description="A shorter wait for people than the tier's policy "
                                                                 "allows; then the version is rejected and escalated.")


class StreamSpec(Strict):
    """How a streaming model's consumers read its Redis Stream `modelops:<model>:in` (see serving/streaming.py)."""

    consumers: int = Field(1, ge=1, le=64, description="Consumers `modelops up` starts in the model's consumer group; "
                                                       "they share the stream, each record goes to one of them.")
    batch_rows: int = Field(256, ge=1, le=10_000, description="Records one consumer reads and scores at a time.")
    block_ms: int = Field(100, ge=1, le=60_000, description="How long a read waits for a record when the stream is "
                                                            "empty (bounds idle polling, not latency).")
    claim_idle_ms: int = Field(30_000, ge=100, description="A record delivered to a consumer and not acknowledged for "
                                                           "this long is taken over by another consumer (its "
                                                           "consumer died mid-batch): at-least-once.")


class DeploySpec(Strict):
    strategy: Literal["champion", "champion_challenger", "shadow"] = Field(
        "champion", description="champion: it serves alone; champion_challenger: an approved @challenger serves "
                                "challenger_traffic_share of requests; shadow: it scores every request, unserved.")
    challenger_traffic_share: float = Field(
        0.1, ge=0, le=0.5, description="Share of requests the @challenger serves (champion_challenger).")
    targets: list[Literal["batch", "online", "stream"]] = Field(
        default_factory=lambda: ["batch", "online"], min_length=1,
        description="Where deployed versions serve: batch (`modelops score`), online (the gateway, `modelops "
                    "serve`) and stream (consumers of the Redis Stream `modelops:<model>:in`, started by `modelops "
                    "up`). A model without online is not served by the gateway.")
    stream: StreamSpec = Field(default_factory=StreamSpec, description="Streaming consumers (target stream).")
    decision_threshold: float = Field(0.5, gt=0, lt=1, description="Classifiers: score at or above is positive.")
    promotion: Literal["comparison", "comparison_or_decision"] = Field(
        "comparison", description="How a version replaces a serving champion. comparison: a new version enters as "
                                  "@challenger and is promoted only by winning the comparison on recent labelled "
                                  "traffic (a rollback to a former champion is always allowed); "
                                  "comparison_or_decision: a person may also promote it with a recorded reason "
                                  "(deploy --role champion --reason ...), e.g. for a model whose labels arrive "
                                  "too late to compare.")
    chunk_rows: int = Field(1000, ge=1, description="Rows per scoring micro-batch (the unit of latency).")
    environment: Literal["auto", "platform", "isolated"] = Field(
        "auto", description="Where the model trains and scores (scikit-learn models saved with skops). auto: in an "
                            "environment of its own, built from its requirements (training.pip_requirements, and "
                            "for a registered version the requirements logged with it) and run by a scoring "
                            "worker, when they pin scikit-learn, skops, numpy or scipy at another version than the "
                            "platform's; else in the platform's process. platform: always in the platform's "
                            "process. isolated: always in its own environment (README 'Models in their own "
                            "environment').")


class DriftSpec(Strict):
    num_method: str = Field("wasserstein", description="Evidently drift method for numeric columns.")
    num_threshold: float = Field(0.1, gt=0, description="Numeric drift threshold: a distance at or above it drifts, "
                                                        "a p-value below it drifts.")
    cat_method: str = Field("jensenshannon", description="Evidently drift method for categorical columns.")
    cat_threshold: float = Field(0.1, gt=0, description="Categorical drift threshold (as num_threshold).")
    warn_share: float = Field(0.1, ge=0, le=1, description="Share of drifted columns that warns.")
    breach_share: float = Field(0.3, gt=0, le=1, description="Share of drifted columns that breaches.")

    @field_validator("num_method", "cat_method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        if value not in DISTANCE_METHODS | P_VALUE_METHODS:
            raise ValueError(f"unknown drift method {value!r}; use one of {sorted(DISTANCE_METHODS | P_VALUE_METHODS)}")
        return value

    @model_validator(mode="after")
    def _warn_below_breach(self) -> "DriftSpec":
        if self.warn_share > self.breach_share:
            raise ValueError("warn_share must not exceed breach_share")
        return self


class PerformanceSpec(Strict):
    metric: str = Field(description="Metric judged once labels arrive; one the platform computes for the task.")
    warn_drop: float = Field(0.02, ge=0, description="Relative drop versus the validation holdout that warns.")
    breach_drop: float = Field(0.05, gt=0, description="Relative drop versus the validation holdout that breaches.")
    min_labelled_rows: int = Field(200, ge=1, description="Fewer labelled predictions: performance is not judged "
                                                          "(also the floor for retrain's comparison).")


class QualityMonitorSpec(Strict):
    warn_below: float = Field(1.0, gt=0, le=1, description="Share of expectations passing below which it warns.")
    breach_below: float = Field(0.9, gt=0, le=1, description="Share of expectations passing below which it breaches.")


class SlaSpec(Strict):
    """Service health from the prediction log. Latency is that of one scoring micro-batch (deploy.chunk_rows)."""

    latency_p95_ms: float = Field(2000, gt=0, description="Limit of the 95th percentile of micro-batch latency (ms).")
    latency_p99_ms: float | None = Field(None, gt=0, description="Limit of the 99th percentile (ms); none: not judged.")
    max_error_rate: float = Field(0.01, ge=0, le=1, description="Share of rows whose scoring failed.")
    stream_lag_ms: float = Field(
        1000, gt=0, description="Streaming models: limit of the consumer lag, the age (ms) of the oldest record "
                                "of the input stream not yet answered and acknowledged.")
    warn_ratio: float = Field(0.8, gt=0, le=1, description="Warn when a value passes this share of its limit.")
    min_batches: int = Field(
        20, ge=1, description="Scoring micro-batches a window needs before its latency is judged: a percentile of a "
                              "few batches is the cold start of one, not the service. With fewer, latency is "
                              "reported but not judged (the error rate still is).")


class AlertSpec(Strict):
    slack_block: str | None = Field(None, description="Name of the SlackAlertChannel block that delivers alerts.")
    cooldown_hours: float = Field(6, ge=0, description="The same alert is not repeated within this time.")


class ReferenceKind(str, Enum):
    """What a monitoring window's drift is judged against."""

    training = "training"
    preceding = "preceding"
    year_ago = "year_ago"


class ReferenceSpec(Strict):
    kind: ReferenceKind = Field(
        ReferenceKind.training,
        description="training: a sample of the version's training window, prepared at validation (drift since "
                    "training, seasons included); preceding: the model's logged traffic in the window of the same "
                    "length right before the judged one (sudden change, not season); year_ago: the same period "
                    "one year earlier, from the prediction log where it holds that period, else through the "
                    "spec's data loader (change beyond the season). A reference with fewer than monitoring.min_rows "
                    "rows is not judged: drift is skipped with a note. The sweep serves year_ago from the "
                    "prediction log only (it does not call loaders for a thousand models).")


class MonitoringSpec(Strict):
    cron: str = Field("0 6 * * *", description="When the scheduled monitor runs (UTC).")
    window_days: int = Field(14, ge=1, le=366, description="Days of logged predictions one monitoring run judges.")
    min_rows: int = Field(100, ge=1, description="Fewer logged predictions than this: the window is not judged; "
                                                 "a drift reference with fewer rows: drift is not judged.")
    reference: ReferenceSpec = Field(default_factory=ReferenceSpec,
                                     description="The data the window's drift is judged against.")
    drift: DriftSpec = Field(default_factory=DriftSpec, description="Feature drift against the reference data.")
    data_quality: QualityMonitorSpec = Field(default_factory=QualityMonitorSpec,
                                             description="The validation expectations, run on logged inputs.")
    performance: PerformanceSpec = Field(description="Model quality on labelled predictions.")
    sla: SlaSpec = Field(default_factory=SlaSpec, description="Latency and error rate of scoring.")
    on_breach: list[Literal["alert", "retrain"]] = Field(default_factory=lambda: ["retrain"],
                                                         description="What a breach does.")
    alerts: AlertSpec = Field(default_factory=AlertSpec, description="Where alerts go and how often.")


class RetrainSpec(Strict):
    mode: Literal["batch"] = Field("batch", description="batch: train a new version from scratch on a window.")
    train_days: int = Field(60, ge=7, description="Days of data a retrain trains on, just before the compare days.")
    compare_days: int = Field(14, ge=1, description="Newest labelled days on which challenger and champion are "
                                                    "compared.")
    min_improvement: float = Field(0.0, ge=0, description="Challenger must beat the champion by this much.")
    cooldown_hours: float = Field(24, ge=0, description="Breaches within this time of a retrain request ask once.")


class RetirementSpec(Strict):
    retire_replaced_champion: bool = Field(True, description="Retire the old champion when a challenger is promoted.")


class FlowOverride(Strict):
    """A per-model flow for one stage, with the settings that flow reads (flows.dispatch.flow_settings)."""

    flow: str = Field(description="Importable 'package.module:flow', a Prefect flow taking the stage's parameters.")
    settings: dict[str, Any] = Field(default_factory=dict, description="Free-form settings of that flow.")

    @field_validator("flow")
    @classmethod
    def _entry_point_syntax(cls, value: str) -> str:
        _check_entry_point_syntax(value)
        return value

    @model_validator(mode="before")
    @classmethod
    def _plain_string(cls, data: Any) -> Any:
        return {"flow": data} if isinstance(data, str) else data


ENTRY_POINT = r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"
# Editors validate YAML against the published schema: it must accept the plain string form the validator takes.
FlowOverrideEntry = Annotated[FlowOverride, WithJsonSchema({"anyOf": [
    {"type": "string", "pattern": ENTRY_POINT, "description": "Importable 'package.module:flow'."},
    FlowOverride.model_json_schema()]})]


class LifecycleSpec(Strict):
    name: str = Field(pattern=MODEL_NAME, description="Model name, equal to the file name; the registered "
                                                      "model in MLflow.")
    description: str = Field("", description="What the model predicts, for people.")
    owner: str = Field(min_length=1, description="Team accountable for the model.")
    risk_tier: RiskTier = Field(description="Business and regulatory risk; approval.automatic_for_tiers uses it.")
    task: Literal["classification", "regression"] = Field(description="Decides the metrics the platform computes: "
                                                                      "accuracy, f1, roc_auc, log_loss, "
                                                                      "positive_rate or mae, rmse, r2.")
    data: DataSpec = Field(description="Where rows come from and which columns mean what.")
    training: TrainingSpec = Field(description="How a version is trained.")
    endpoint: EndpointSpec | None = Field(None, description="training.kind 'endpoint' only: the HTTP scoring "
                                                            "service the model runs in (README 'Endpoint models').")
    validation: ValidationSpec = Field(description="Gates a version must pass before approval.")
    approval: ApprovalSpec = Field(default_factory=ApprovalSpec, description="Who or what approves a version.")
    deploy: DeploySpec = Field(default_factory=DeploySpec, description="How approved versions serve.")
    monitoring: MonitoringSpec = Field(description="When and how the serving champion is judged.")
    retrain: RetrainSpec = Field(default_factory=RetrainSpec, description="What a retrain request does.")
    retirement: RetirementSpec = Field(default_factory=RetirementSpec, description="When versions retire.")
    flows: dict[Stage, FlowOverrideEntry] = Field(
        default_factory=dict,
        description="Per-model flows: stage -> 'package.module:flow', or {flow: 'package.module:flow', settings: "
                    "{...}}. The stage's deployment hands this model over to that flow (triggers, schedules, the "
                    "CLI and retrain's sub-flows all honour it). See docs/per-model-flows.md.")

    @field_validator("data")
    @classmethod
    def _entry_point_syntax(cls, value: DataSpec) -> DataSpec:
        _check_entry_point_syntax(value.loader)
        return value

    @field_validator("training")
    @classmethod
    def _training_entry_point_syntax(cls, value: TrainingSpec) -> TrainingSpec:
        if value.kind == "endpoint" and value.entry_point is not None:
            raise ValueError("training.entry_point: an endpoint model is trained elsewhere, nothing trains here; "
                             "remove the entry point (the spec's endpoint section describes the model)")
        if value.kind != "endpoint" and value.entry_point is None:
            raise ValueError("training.entry_point is required: name the 'module:function' that trains the model")
        if value.entry_point is not None:
            _check_entry_point_syntax(value.entry_point)
        if (value.kind == "custom") != (value.model_class is not None):
            raise ValueError("training.model_class names the class of a custom model: give it exactly when "
                             "training.kind is 'custom'")
        if value.model_class is not None:
            _check_entry_point_syntax(value.model_class)
        return value

    @model_validator(mode="after")
    def _endpoint_section(self) -> "LifecycleSpec":
        endpoint_kind = self.training.kind == "endpoint"
        if endpoint_kind and self.endpoint is None:
            raise ValueError("endpoint: training.kind is 'endpoint' but the spec has no endpoint section; give "
                             "endpoint.url, model_name and output")
        if not endpoint_kind and self.endpoint is not None:
            raise ValueError("endpoint: the endpoint section describes a model served elsewhere; set training.kind "
                             "to 'endpoint' or remove the section")
        if endpoint_kind and "retrain" in self.monitoring.on_breach:
            raise ValueError("monitoring.on_breach: an endpoint model is trained by its owner, not here, so a breach "
                             "cannot retrain it; use on_breach: [alert] (the alert goes to the owner)")
        return self

    @model_validator(mode="after")
    def _consistent(self) -> "LifecycleSpec":
        higher = self.monitoring.performance.metric in HIGHER_IS_BETTER
        if not higher and self.monitoring.performance.metric not in {"mae", "rmse", "log_loss", "brier"}:
            raise ValueError(f"monitoring.performance.metric {self.monitoring.performance.metric!r} is not a metric "
                             "the platform computes (classification: roc_auc, accuracy, f1, log_loss; "
                             "regression: mae, rmse, r2)")
        return self

    @field_validator("validation")
    @classmethod
    def _fairness_covers_protected_attributes(cls, value: ValidationSpec, info: ValidationInfo) -> ValidationSpec:
        """A spec that lists protected attributes cannot skip the bias check: no default limit is assumed, since a
        limit is a policy decision someone must own."""
        data, task = info.data.get("data"), info.data.get("task")
        if data is None or task is None:
            return value  # the data or task field failed: its own error says why
        attributes, fairness = data.protected_attributes, value.fairness
        if attributes and fairness is None:
            raise ValueError(f"fairness: data.protected_attributes lists {attributes} but validation.fairness sets "
                             f"no limit; add validation.fairness.limits, e.g. {{{FAIRNESS_METRICS[task][0]}: 0.2}}")
        if fairness is not None and not attributes:
            raise ValueError("fairness: validation.fairness is set but data.protected_attributes is empty, so "
                             "nothing would be measured; list the feature columns to measure across")
        unknown = [a for a in attributes if a not in data.features.all]
        if unknown:
            raise ValueError(f"fairness: protected attributes {unknown} are not features (data.features); bias is "
                             "measured on the model's inputs, as logged with each prediction")
        wrong = [m for m in (fairness.limits if fairness else {}) if m not in FAIRNESS_METRICS[task]]
        if wrong:
            raise ValueError(f"fairness.limits: {wrong} cannot be measured on a {task} model; use "
                             f"{list(FAIRNESS_METRICS[task])}")
        return value

    def entry(self, which: Literal["loader", "trainer"]) -> Callable[..., Any]:
        if which == "trainer" and self.training.entry_point is None:
            raise SpecError(f"{self.name} is an endpoint model: the platform trains nothing for it",
                            "ask its owner for a new version of the endpoint, then register it again")
        return resolve_entry_point(self.data.loader if which == "loader" else self.training.entry_point)


def _check_entry_point_syntax(value: str) -> None:
    if not re.fullmatch(ENTRY_POINT, value):
        raise ValueError(f"{value!r} is not an entry point; write it as 'package.module:function'")


def resolve_entry_point(value: str) -> Callable[..., Any]:
    module_name, _, attr = value.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SpecError(f"entry point {value!r}: cannot import {module_name!r} ({exc})",
                        "install the package that provides it or fix the module path in the spec") from exc
    func = getattr(module, attr, None)
    if not callable(func):
        raise SpecError(f"entry point {value!r}: {module_name} has no callable {attr!r}",
                        "fix the function name in the spec")
    return func


def _format_errors(path: Path, error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "<file>"
        lines.append(f"{path}: field '{field}': {item['msg']}")
    return "\n".join(lines)


def parse_spec(path: Path) -> LifecycleSpec:
    """Load and validate one spec file; raise SpecError naming the path, field and reason.

    A spec is parsed once per content: a retrain runs five stage flows, each resolving the spec by name, and
    they share one parsed (frozen) object. An edited file (new mtime or size) is parsed afresh."""
    if not path.is_file():
        raise SpecError(f"{path}: no such life cycle spec", "create it (see configs/models/flight-delay.yaml)")
    status = path.stat()
    return _parse_spec_cached(path.resolve(), status.st_mtime_ns, status.st_size)


M = TypeVar("M", bound=BaseModel)


def validated_yaml(path: Path, model: type[M]) -> M:
    """A YAML config file validated as `model`; SpecError naming the path, the field and the reason."""
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML ({exc})", "fix the YAML syntax") from exc
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: expected a mapping of fields, got {type(raw).__name__}", "see the shipped files")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(_format_errors(path, exc), "fix the field named above") from exc


@lru_cache(maxsize=256)
def _parse_spec_cached(path: Path, mtime_ns: int, size: int) -> LifecycleSpec:
    spec = validated_yaml(path, LifecycleSpec)
    if spec.name != path.stem:
        raise SpecError(f"{path}: field 'name': {spec.name!r} differs from the file name {path.stem!r}",
                        "name the file <name>.yaml")
    return spec


def spec_path(model: str, config_dir: Path) -> Path:
    return config_dir / "models" / f"{model}.yaml"


def load_spec(model: str, config_dir: Path | None = None) -> LifecycleSpec:
    from modelops.settings import load_settings

    return parse_spec(spec_path(model, config_dir or load_settings().config_dir))


def load_all_specs(config_dir: Path | None = None) -> list[LifecycleSpec]:
    from modelops.settings import load_settings

    folder = (config_dir or load_settings().config_dir) / "models"
    return [parse_spec(path) for path in sorted(folder.glob("*.yaml"))]
