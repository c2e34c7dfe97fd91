"""Experiment configuration: `include/experiments/<name>.yaml`, validated before any DAG is built from it.

A bad file raises ConfigError naming the file and the field, so the DAG factory can surface it as that file's
import error while every other experiment still loads.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Annotated, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from groundtruth.requests import PublicWorkforce, Workforce

BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
ROLE_RE = re.compile(r"^arn:aws[a-z\-]*:iam::\d{12}:role/.+$")
LABEL_NAME_RE = re.compile(r"^/m/[0-9a-z_]+$")


def _dag_name(v: str) -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9_]{0,40}", v):
        raise ValueError("must be 1-41 lowercase letters, digits or underscores (it becomes part of the DAG id)")
    return v


def _bucket(v: str) -> str:
    if not BUCKET_RE.match(v):
        raise ValueError(f"{v!r} is not a valid S3 bucket name")
    return v


def _role(v: str) -> str:
    if not ROLE_RE.match(v):
        raise ValueError(f"{v!r} is not an IAM role ARN")
    return v


def _label_name(v: str) -> str:
    if not LABEL_NAME_RE.match(v):
        raise ValueError(f"{v!r} is not an Open Images LabelName like /m/015p6")
    return v


def _attribute(v: str) -> str:
    if not re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,126}", v) or v.endswith("-metadata"):
        raise ValueError("must match [a-zA-Z0-9](-*[a-zA-Z0-9]){0,126} and not end in -metadata")
    return v


def _prefix(v: str) -> str:
    v = v.strip("/")
    if not v or ".." in v.split("/"):
        raise ValueError("must be a non-empty S3 key prefix without '..'")
    return v


# The fields experiments and nightlies share, each with its one check.
DagName = Annotated[str, AfterValidator(_dag_name)]
BucketName = Annotated[str, AfterValidator(_bucket)]
RoleArn = Annotated[str, AfterValidator(_role)]
LabelName = Annotated[str, AfterValidator(_label_name)]
LabelAttribute = Annotated[str, AfterValidator(_attribute)]
KeyPrefix = Annotated[str, AfterValidator(_prefix)]


class ConfigError(ValueError):
    """An experiment file that cannot become a DAG; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_M = TypeVar("_M", bound=_Strict)


class SourceConfig(_Strict):
    bucket: str = "open-images-dataset"
    image_prefix: str = "test/"
    annotations_key: str = "annotations/test-annotations-bbox.csv"
    hierarchy_key: str = "annotations/bbox_labels_600_hierarchy.json"


class ExperimentConfig(_Strict):
    """What to label, how and where; every field a person may change is also a DAG Param."""

    name: DagName
    description: str = ""
    owner: str = "ml-data-ops"
    tags: list[str] = Field(default_factory=lambda: ["groundtruth", "experiment"])
    schedule: str | None = None
    aws_conn_id: str = "aws_default"
    region: str = "us-east-1"
    bucket: BucketName
    create_bucket: bool = False
    prefix: KeyPrefix = "ground-truth-experiments"
    role_arn: RoleArn
    source: SourceConfig = Field(default_factory=SourceConfig)
    class_id: LabelName
    class_name: str
    images: Annotated[int, Field(ge=2, le=100_000)] = 2500
    max_image_mb: Annotated[float, Field(gt=0, le=100)] = 6.0
    skip_images: list[str] = Field(default_factory=list)
    label_attribute: LabelAttribute = "category"
    workforce: Workforce = Field(default_factory=lambda: PublicWorkforce(price_usd="0.036"))
    workers_per_object: Annotated[int, Field(ge=1, le=9)] = 3
    max_concurrent_tasks: Annotated[int, Field(ge=1, le=5000)] = 200
    task_time_limit_seconds: Annotated[int, Field(ge=30, le=28_800)] = 300
    task_availability_seconds: Annotated[int, Field(ge=60, le=864_000)] = 21_600
    auto_labeling: bool = True
    service_fee_usd: Annotated[float, Field(ge=0)] = 0.08
    copy_workers: Annotated[int, Field(ge=1, le=256)] = 32
    retries: Annotated[int, Field(ge=0, le=10)] = 2


def _load_yaml(path: Path, model: type[_M]) -> _M:
    """Parse and validate one config file; ConfigError names the file and the field. The stem must equal `name`."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of fields")
    data.setdefault("name", path.stem)
    try:
        config = model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_validation_problems(exc, 'field')}") from None
    if config.name != path.stem:
        raise ConfigError(f"{path}: field 'name' is {config.name!r} but the file is named {path.stem!r}")
    return config


def _validation_problems(exc: ValidationError, what: str) -> str:
    return "; ".join(f"{what} '{'.'.join(str(p) for p in e['loc']) or '(root)'}': {e['msg']}" for e in exc.errors())


def load_experiment(path: Path) -> ExperimentConfig:
    """Parse and validate one experiment file. The file stem must equal its `name`."""
    return _load_yaml(path, ExperimentConfig)


def _apply_workforce_params(data: dict, params: dict) -> None:
    """The workforce Params (`workforce_kind`, `price_usd`, `workteam_arn`) over a dumped config's workforce.

    An empty or missing value keeps the config's (the UI form's defaults are the config's values); what is given is
    validated with the rest of the config, so a bad price or ARN is refused with the Param named."""
    if not any(params.get(key) not in (None, "") for key in ("workforce_kind", "price_usd", "workteam_arn")):
        return
    current = data["workforce"]
    kind = params.get("workforce_kind") or current["kind"]
    if kind == "public":
        price = params.get("price_usd")
        price = current.get("price_usd") if price in (None, "") else price
        data["workforce"] = {"kind": kind, "price_usd": None if price is None else str(price)}
    else:
        data["workforce"] = {"kind": kind, "workteam_arn": params.get("workteam_arn") or current.get("workteam_arn")}


def with_params(config: ExperimentConfig, params: dict) -> ExperimentConfig:
    """The config with a run's Param values applied (only keys the config knows), re-validated as a whole."""
    known = set(ExperimentConfig.model_fields)
    data = config.model_dump()
    for key, value in params.items():
        if key in known and value is not None:
            data[key] = value
    _apply_workforce_params(data, params)
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"experiment {config.name}: {_validation_problems(exc, 'param')}") from None


# -- nightly labeling: include/nightly/<name>.yaml -------------------------------------------------------------------
MODEL_ARN_RE = re.compile(r"^arn:aws[a-z\-]*:sagemaker:[a-z0-9\-]+:\d{12}:model/[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
SNS_TOPIC_RE = re.compile(r"^arn:aws[a-z\-]*:sns:[a-z0-9\-]+:\d{12}:[A-Za-z0-9_\-]{1,256}(\.fifo)?$")
DS_PLACEHOLDERS = ("{{ ds }}", "{{ ds_nodash }}")


class OpenImagesShards(_Strict):
    """Shard k is the k-th slice of `images_per_shard` of the class's qualifying images, in annotation-file order;
    k counts days from the nightly's `start_date`. Past the end of the class, shards are empty."""

    kind: Literal["openimages"] = "openimages"
    source: SourceConfig = Field(default_factory=SourceConfig)
    class_id: LabelName
    images_per_shard: Annotated[int, Field(ge=1, le=100_000)] = 1250
    max_image_mb: Annotated[float, Field(gt=0, le=100)] = 6.0
    skip_images: list[str] = Field(default_factory=list)


class S3PrefixShards(_Strict):
    """The shard of a day is every image under a date-partitioned prefix, e.g. `s3://bucket/incoming/dt={{ ds }}/`
    (`{{ ds }}` and `{{ ds_nodash }}` are replaced by the shard's date; nothing else is templated)."""

    kind: Literal["s3_prefix"] = "s3_prefix"
    uri: str
    suffixes: list[str] = Field(default_factory=lambda: [".jpg", ".jpeg", ".png"])
    max_image_mb: Annotated[float, Field(gt=0, le=100)] = 6.0
    max_objects: Annotated[int, Field(ge=1, le=1_000_000)] = 100_000

    @field_validator("uri")
    @classmethod
    def _uri(cls, v: str) -> str:
        if not v.startswith("s3://") or not any(p in v for p in DS_PLACEHOLDERS):
            raise ValueError("must be an s3:// prefix containing {{ ds }} or {{ ds_nodash }}")
        bucket = v[5:].split("/", 1)[0]
        if not BUCKET_RE.match(bucket):
            raise ValueError(f"{bucket!r} is not a valid S3 bucket name")
        return v if v.endswith("/") else v + "/"


ShardSource = Annotated[OpenImagesShards | S3PrefixShards, Field(discriminator="kind")]


class NotifyConfig(_Strict):
    sns_topic_arn: str | None = None

    @field_validator("sns_topic_arn")
    @classmethod
    def _topic(cls, v: str | None) -> str | None:
        if v is not None and not SNS_TOPIC_RE.match(v):
            raise ValueError(f"{v!r} is not an SNS topic ARN")
        return v


class NightlyConfig(_Strict):
    """One nightly labeling chain; the labeling fields mirror ExperimentConfig, so the request builder serves both."""

    name: DagName
    description: str = ""
    owner: str = "ml-data-ops"
    tags: list[str] = Field(default_factory=lambda: ["groundtruth", "nightly"])
    schedule: str = "0 3 * * *"
    timezone: str = "UTC"
    start_date: date
    catchup: bool = False
    max_active_runs: Annotated[int, Field(ge=1, le=16)] = 1
    aws_conn_id: str = "aws_default"
    region: str = "us-east-1"
    bucket: BucketName
    create_bucket: bool = False
    prefix: KeyPrefix = "ground-truth-nightly"
    role_arn: RoleArn
    class_name: str
    shards: ShardSource
    label_attribute: LabelAttribute = "category"
    workforce: Workforce = Field(default_factory=lambda: PublicWorkforce(price_usd="0.036"))
    workers_per_object: Annotated[int, Field(ge=1, le=9)] = 3
    max_concurrent_tasks: Annotated[int, Field(ge=1, le=5000)] = 200
    task_time_limit_seconds: Annotated[int, Field(ge=30, le=28_800)] = 300
    task_availability_seconds: Annotated[int, Field(ge=60, le=864_000)] = 21_600
    auto_labeling: bool = True
    seed_model_arn: str | None = None
    service_fee_usd: Annotated[float, Field(ge=0)] = 0.08
    budget_usd: Annotated[float, Field(ge=0)]
    check_interval_seconds: Annotated[float, Field(gt=0, le=3600)] = 300
    copy_workers: Annotated[int, Field(ge=1, le=256)] = 32
    retries: Annotated[int, Field(ge=1, le=10)] = 2
    notify: NotifyConfig = Field(default_factory=NotifyConfig)

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, v: str) -> str:
        from croniter import croniter

        if not croniter.is_valid(v):
            raise ValueError(f"{v!r} is not a cron expression (e.g. '0 3 * * *' for 03:00 every day)")
        return v

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{v!r} is not an IANA time zone such as UTC or Europe/Berlin") from None
        return v

    @field_validator("seed_model_arn")
    @classmethod
    def _seed(cls, v: str | None) -> str | None:
        if v is not None and not MODEL_ARN_RE.match(v):
            raise ValueError(f"{v!r} is not a SageMaker model ARN (arn:aws:sagemaker:<region>:<account>:model/...)")
        return v


def load_nightly(path: Path) -> NightlyConfig:
    """Parse and validate one nightly file (`include/nightly/<name>.yaml`). The file stem must equal its `name`."""
    return _load_yaml(path, NightlyConfig)


#: The run Params that map onto NightlyConfig fields (the rest, such as force_relabel, steer the run itself).
NIGHTLY_PARAM_FIELDS = (
    "budget_usd",
    "seed_model_arn",
    "auto_labeling",
    "workers_per_object",
    "max_concurrent_tasks",
    "task_time_limit_seconds",
    "service_fee_usd",
)


def nightly_with_params(config: NightlyConfig, params: dict) -> NightlyConfig:
    """The config with a run's Param values applied, re-validated as a whole; shards, bucket and prefix (the
    chain's identity) are not Params."""
    data = config.model_dump()
    for key in NIGHTLY_PARAM_FIELDS:
        if key == "seed_model_arn" and key in params:
            data[key] = params[key] or None  # an empty form field means "no seed model"
        elif params.get(key) is not None:
            data[key] = params[key]
    _apply_workforce_params(data, params)
    if "notify_sns_topic_arn" in params:
        data["notify"] = {"sns_topic_arn": params["notify_sns_topic_arn"] or None}
    try:
        return NightlyConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"nightly {config.name}: {_validation_problems(exc, 'param')}") from None
