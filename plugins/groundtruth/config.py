"""Configuration of every DAG family, validated before any DAG is built from it.

`LabelingSettings` holds what every family shares (where, who labels, at what price, how patiently);
`ExperimentConfig` (`include/experiments/<name>.yaml`) and `NightlyConfig` (`include/nightly/<name>.yaml`) extend
it. A bad file raises ConfigError naming the file and the field, so the DAG factory can surface it as that file's
import error while every other config still loads. `with_params` applies a run's Params and validates again, so a
bad trigger-form value is refused by the first task, before anything is paid for.
"""

from __future__ import annotations

import math
import os
import re
from datetime import date
from pathlib import Path
from typing import Annotated, ClassVar, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

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


MIN_OBJECTS_FOR_AUTO_LABELING = 1250  # Ground Truth trains no model for a job below this many objects


class LabelingSettings(_Strict):
    """What every DAG family shares: where the data lives, who labels it, at what price, how patiently.

    `PARAM_FIELDS` names the fields a run may override from its Params (see `with_params`); the DAG factories build
    the trigger form from the same list (`groundtruth.dagfactory.run_params`)."""

    PARAM_FIELDS: ClassVar[tuple[str, ...]] = ()

    name: DagName
    description: str = ""
    owner: str = "ml-data-ops"
    tags: list[str] = Field(default_factory=lambda: ["groundtruth"])
    aws_conn_id: str = "aws_default"
    region: str = "us-east-1"
    bucket: BucketName
    create_bucket: bool = False
    prefix: KeyPrefix
    role_arn: RoleArn
    label_attribute: LabelAttribute = "category"
    workforce: Workforce = Field(default_factory=lambda: PublicWorkforce(price_usd="0.036"))
    workers_per_object: Annotated[int, Field(ge=1, le=9)] = 3
    max_concurrent_tasks: Annotated[int, Field(ge=1, le=5000)] = 200
    task_time_limit_seconds: Annotated[int, Field(ge=30, le=28_800)] = 300
    task_availability_seconds: Annotated[int, Field(ge=60, le=864_000)] = 21_600
    auto_labeling: bool = True
    service_fee_usd: Annotated[float, Field(ge=0)] = 0.08
    # Seconds between status checks of a job; jobs run for hours, so a minute is plenty on AWS.
    check_interval_seconds: Annotated[float, Field(gt=0, le=3600)] = 60
    copy_workers: Annotated[int, Field(ge=1, le=256)] = 32
    retries: Annotated[int, Field(ge=0, le=10)] = 2
    # Seconds before a paid-job task (labeling, training, transform) tries again: a retry only reattaches to the job
    # its first try started, so there is no hurry. (A try can also fail through Airflow's own race, apache/airflow
    # #72716: a job that ends within seconds of the deferral; its retry finds the job done.)
    job_retry_delay_seconds: Annotated[int, Field(ge=1, le=3600)] = 300

    def apply_extra_params(self, data: dict, params: dict) -> None:
        """Params of a family that do not map one-to-one onto a field (none here)."""


class ExperimentConfig(LabelingSettings):
    """The seed's three-job experiment: what to label, how and where."""

    PARAM_FIELDS: ClassVar[tuple[str, ...]] = (
        "bucket",
        "prefix",
        "class_id",
        "class_name",
        "images",
        "max_image_mb",
        "region",
        "role_arn",
        "service_fee_usd",
        "auto_labeling",
    )

    tags: list[str] = Field(default_factory=lambda: ["groundtruth", "experiment"])
    schedule: str | None = None
    prefix: KeyPrefix = "ground-truth-experiments"
    class_name: str
    source: SourceConfig = Field(default_factory=SourceConfig)
    class_id: LabelName
    images: Annotated[int, Field(ge=2, le=100_000)] = 2500
    max_image_mb: Annotated[float, Field(gt=0, le=100)] = 6.0
    skip_images: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _iteration_2_gets_a_model(self) -> ExperimentConfig:
        # Iteration 2 starts from iteration 1's final model, which only a job of >= 1,250 objects produces:
        # refused here, before iterations 1 and 3 are paid for.
        half = self.images // 2
        if self.auto_labeling and half < MIN_OBJECTS_FOR_AUTO_LABELING:
            raise ValueError(
                f"images={self.images} gives iteration 1 {half} objects, but auto-labeling needs at least "
                f"{MIN_OBJECTS_FOR_AUTO_LABELING} per job to train the model iteration 2 starts from; use images >= "
                f"{2 * MIN_OBJECTS_FOR_AUTO_LABELING} or auto_labeling: false"
            )
        return self


CHECK_INTERVAL_ENV = "GT_CHECK_INTERVAL_SECONDS"


def _load_yaml(path: Path, model: type[_M]) -> _M:
    """Parse and validate one config file; ConfigError names the file and the field. The stem must equal `name`."""
    import yaml

    try:
        # libyaml's loader when PyYAML was built with it (several times faster per file), else the pure-Python one
        data = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of fields")
    data.setdefault("name", path.stem)
    interval = os.environ.get(CHECK_INTERVAL_ENV)
    if interval:  # a deployment-wide override: the demo and the tests poll the emulator's fast jobs more often
        data["check_interval_seconds"] = interval
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


_S = TypeVar("_S", bound=LabelingSettings)


def with_params(config: _S, params: dict) -> _S:
    """The config with a run's Param values applied (the config class's `PARAM_FIELDS`, the workforce Params and
    the class's own extras), re-validated as a whole; ConfigError names the Param at fault."""
    data = config.model_dump()
    for key in type(config).PARAM_FIELDS:
        if params.get(key) is not None:
            data[key] = params[key]
    _apply_workforce_params(data, params)
    config.apply_extra_params(data, params)
    try:
        return type(config).model_validate(data)
    except ValidationError as exc:
        kind = re.sub(r"(?<!^)(?=[A-Z])", " ", type(config).__name__.removesuffix("Config")).lower()
        raise ConfigError(f"{kind} {config.name}: {_validation_problems(exc, 'param')}") from None


def _cron(v: str) -> str:
    from croniter import croniter

    if not croniter.is_valid(v):
        raise ValueError(f"{v!r} is not a cron expression (e.g. '0 3 * * *' for 03:00 every day)")
    return v


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


class NightlyConfig(LabelingSettings):
    """One nightly labeling chain."""

    # The chain's identity (shards, bucket, prefix) is not a Param: a run must not move the chain.
    PARAM_FIELDS: ClassVar[tuple[str, ...]] = (
        "budget_usd",
        "auto_labeling",
        "workers_per_object",
        "max_concurrent_tasks",
        "task_time_limit_seconds",
        "service_fee_usd",
    )

    tags: list[str] = Field(default_factory=lambda: ["groundtruth", "nightly"])
    schedule: str = "0 3 * * *"
    timezone: str = "UTC"
    start_date: date
    catchup: bool = False
    max_active_runs: Annotated[int, Field(ge=1, le=16)] = 1
    prefix: KeyPrefix = "ground-truth-nightly"
    class_name: str
    shards: ShardSource
    seed_model_arn: str | None = None
    budget_usd: Annotated[float, Field(ge=0)]
    check_interval_seconds: Annotated[float, Field(gt=0, le=3600)] = 300
    retries: Annotated[int, Field(ge=1, le=10)] = 2
    notify: NotifyConfig = Field(default_factory=NotifyConfig)

    def apply_extra_params(self, data: dict, params: dict) -> None:
        if "seed_model_arn" in params:
            data["seed_model_arn"] = params["seed_model_arn"] or None  # an empty form field means "no seed model"
        if "notify_sns_topic_arn" in params:
            data["notify"] = {"sns_topic_arn": params["notify_sns_topic_arn"] or None}

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, v: str) -> str:
        return _cron(v)

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


# -- active learning: include/active_learning/<name>.yaml ------------------------------------------------------------
S3_URI_RE = re.compile(r"^s3://(?P<bucket>[^/]+)/(?P<key>.*)$")
BLAZINGTEXT_HYPERPARAMETERS = {  # the seed's (GROUND_TRUTH.md)
    "mode": "supervised",
    "epochs": "20",
    "learning_rate": "0.05",
    "min_count": "5",
    "min_epochs": "1",
    "early_stopping": "True",
    "patience": "5",
    "vector_dim": "20",
    "word_ngrams": "2",
}
ECR_IMAGE_RE = re.compile(
    r"^\d{12}\.dkr\.ecr\.[a-z0-9\-]+\.amazonaws\.com(\.cn)?/[a-z0-9._/\-]+(:[\w.\-]+|@sha256:[0-9a-f]{64})$"
)


def _s3_uri(v: str, *, prefix: bool) -> str:
    match = S3_URI_RE.match(v)
    if not match or not BUCKET_RE.match(match["bucket"]):
        raise ValueError(f"{v!r} is not an s3://<bucket>/<key> URI")
    key = match["key"]
    if ".." in key.split("/"):
        raise ValueError(f"{v!r}: the key must not contain '..'")
    if prefix:
        return v if v.endswith("/") else v + "/"
    if not key or key.endswith("/"):
        raise ValueError(f"{v!r} names a prefix, not an object")
    return v


def _s3_object(v: str) -> str:
    return _s3_uri(v, prefix=False)


def _s3_prefix(v: str) -> str:
    return _s3_uri(v, prefix=True)


def _image(v: str) -> str:
    if not ECR_IMAGE_RE.match(v):
        raise ValueError(f"{v!r} is not an ECR image URI (<account>.dkr.ecr.<region>.amazonaws.com/<repo>:<tag>)")
    return v


def _relative_dir(v: str) -> str:
    parts = Path(v).parts
    if not parts or Path(v).is_absolute() or ".." in parts:
        raise ValueError(f"{v!r} must be a directory relative to include/ (no '..')")
    return v


S3ObjectUri = Annotated[str, AfterValidator(_s3_object)]
S3PrefixUri = Annotated[str, AfterValidator(_s3_prefix)]
ImageUri = Annotated[str, AfterValidator(_image)]
InstanceType = Annotated[str, Field(pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$")]


class BlazingTextModel(_Strict):
    """The seed's Part 1: SageMaker's built-in BlazingText (supervised), its image from the region."""

    kind: Literal["blazingtext"] = "blazingtext"
    image: ImageUri | None = None  # default: the region's BlazingText image
    hyperparameters: dict[str, str] = Field(default_factory=lambda: dict(BLAZINGTEXT_HYPERPARAMETERS))
    instance_type: InstanceType = "ml.c5.2xlarge"
    max_runtime_seconds: Annotated[int, Field(ge=60, le=432_000)] = 432_000
    transform_instance_type: InstanceType = "ml.m5.xlarge"


class ScriptModel(_Strict):
    """The seed's Part 2, your own model: a script-mode source directory (under include/) run in a framework
    container under the SageMaker training and inference toolkits' contract."""

    kind: Literal["script"] = "script"
    source_dir: Annotated[str, AfterValidator(_relative_dir)]
    entry_point: str = "train.py"
    inference_entry_point: str = "inference.py"
    image: ImageUri
    inference_image: ImageUri | None = None  # default: `image`
    hyperparameters: dict[str, str] = Field(default_factory=dict)
    instance_type: InstanceType = "ml.m5.large"
    # How the script logs its validation accuracy (the first group is the number): a MetricDefinitions regex
    validation_accuracy_regex: str = r"#validation_accuracy: ([0-9.]+)"
    max_runtime_seconds: Annotated[int, Field(ge=60, le=432_000)] = 3_600
    transform_instance_type: InstanceType = "ml.m5.large"


LoopModel = Annotated[BlazingTextModel | ScriptModel, Field(discriminator="kind")]


class ActiveLearningConfig(LabelingSettings):
    """The seed's bring-your-own-model active-learning loop over one text-classification manifest."""

    PARAM_FIELDS: ClassVar[tuple[str, ...]] = (
        "input_manifest",
        "label_categories",
        "output_prefix",
        "label_attribute",
        "bootstrap_share",
        "validation_share",
        "human_batch_share",
        "auto_label_margin",
        "budget_usd",
        "sample_seed",
        "workers_per_object",
        "task_time_limit_seconds",
        "service_fee_usd",
    )

    tags: list[str] = Field(default_factory=lambda: ["groundtruth", "active-learning"])
    schedule: str | None = None
    start_date: date | None = None
    catchup: bool = False
    max_active_runs: Annotated[int, Field(ge=1, le=16)] = 1
    prefix: KeyPrefix = "ground-truth-active-learning"  # under `bucket`: the model's source bundles
    input_manifest: S3ObjectUri  # may contain {{ ds }} / {{ ds_nodash }}: a dated shard per run
    label_categories: S3ObjectUri  # may contain them too
    output_prefix: S3PrefixUri  # a run writes under <output_prefix><run key>/
    task_type: Literal["text-classification"] = "text-classification"
    model: LoopModel = Field(default_factory=BlazingTextModel)
    bootstrap_share: Annotated[float, Field(ge=0, lt=1)] = 0.2
    validation_share: Annotated[float, Field(gt=0, lt=1)] = 0.1
    human_batch_share: Annotated[float, Field(gt=0, le=1)] = 0.1
    auto_label_margin: Annotated[float, Field(ge=0, lt=1)] = 0.5
    max_rounds: Annotated[int, Field(ge=1, le=20)] = 8
    budget_usd: Annotated[float, Field(ge=0)]
    sample_seed: str | None = None  # seeds the human batches' sample; default: the config's name
    transform_max_seconds: Annotated[int, Field(ge=60, le=432_000)] = 86_400
    auto_labeling: bool = False  # the loop labels by its own model's margin; the human jobs never auto-label
    # A paid job that failed fails its task for good (a retry reports the same job); true: a retry or clear starts a
    # fresh attempt `<name>-a<N>` instead.
    restart_failed_jobs: bool = False

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, v: str | None) -> str | None:
        return None if v is None else _cron(v)

    @model_validator(mode="after")
    def _the_loop_can_finish(self) -> ActiveLearningConfig:
        if self.validation_share >= self.bootstrap_share and self.bootstrap_share > 0:
            raise ValueError(
                f"validation_share={self.validation_share} must be below bootstrap_share={self.bootstrap_share}: "
                "the first round trains on the human labels outside the validation set"
            )
        if self.bootstrap_share == 0:
            raise ValueError("bootstrap_share must be above 0: the first round needs human labels to train on")
        # Each round sends floor(total * human_batch_share) objects (or all that is left) to humans, so after the
        # bootstrap this many rounds always finish a large corpus; the DAG has exactly max_rounds round groups.
        needed = math.ceil(round((1 - self.bootstrap_share) / self.human_batch_share, 9))
        if self.max_rounds < needed:
            raise ValueError(
                f"max_rounds={self.max_rounds} cannot finish the loop: after a {self.bootstrap_share:g} bootstrap, "
                f"human batches of {self.human_batch_share:g} need up to {needed} rounds"
            )
        if self.auto_labeling:
            raise ValueError("auto_labeling must be false: the loop auto-labels with its own model")
        return self

    @property
    def seed(self) -> str:
        return self.sample_seed or self.name

    def dated(self, field: Literal["input_manifest", "label_categories"], ds: str | None) -> str:
        """The field's URI with `{{ ds }}` / `{{ ds_nodash }}` replaced by the run's date (nothing else is
        templated): a scheduled config reads one dated shard per run."""
        uri = getattr(self, field)
        if any(p in uri for p in DS_PLACEHOLDERS):
            if not ds:
                raise ValueError(f"{field} {uri!r} needs a run date ({{{{ ds }}}}) and the run has none")
            uri = uri.replace("{{ ds }}", ds).replace("{{ ds_nodash }}", ds.replace("-", ""))
        return uri


def load_active_learning(path: Path) -> ActiveLearningConfig:
    """Parse and validate one active-learning file (`include/active_learning/<name>.yaml`); a script model's
    `source_dir` must exist under the include directory (the file's grandparent) with its entry points."""
    config = _load_yaml(path, ActiveLearningConfig)
    if isinstance(config.model, ScriptModel):
        source = path.resolve().parent.parent / config.model.source_dir
        for script in (config.model.entry_point, config.model.inference_entry_point):
            if not (source / script).is_file():
                raise ConfigError(f"{path}: field 'model.source_dir': {source / script} does not exist")
    return config
