"""
Typed labeling-job configuration → a ``CreateLabelingJob`` request, deterministic job names, and request checks.

Everything here is pure: no AWS calls, no Airflow imports, so DAG files can use it at parse time.

* :class:`LabelingJobConfig` (pydantic v2) describes a job in domain terms; :func:`build_create_labeling_job_request`
  turns it into the request dict ``CreateLabelingJobOperator(config=...)`` takes.
* The built-in task presets carry the ``PRE-``/``ACS-`` Lambda names; the per-region AWS account that hosts them and
  the auto-labeling algorithm ARNs come from the AWS API reference (see :data:`GROUND_TRUTH_LAMBDA_ACCOUNTS`).
* :func:`labeling_job_name` makes valid, deterministic, collision-free job names from (dag, run, task, iteration).
* :func:`validate_request` checks any request against botocore's own service model (required members, lengths,
  patterns, ranges, enums) and names every offending field, before anything is sent.
"""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from groundtruth.pricing import usd_price

if TYPE_CHECKING:
    from botocore.model import Shape

# --------------------------------------------------------------------------------------------------------------------
# Region tables.
#
# Source: the AWS SageMaker API reference — HumanTaskConfig.PreHumanTaskLambdaArn,
# AnnotationConsolidationConfig.AnnotationConsolidationLambdaArn and
# LabelingJobAlgorithmsConfig.LabelingJobAlgorithmSpecificationArn — which botocore ships verbatim as the
# `documentation` of those members in botocore/data/sagemaker/2017-07-24/service-2.json. Every built-in task type's
# PRE-/ACS- functions live in the same account per region, and the documentation lists the same 12 regions for all
# of them. tests/plugins/test_requests.py re-reads that text and fails if this table drifts from it.
# --------------------------------------------------------------------------------------------------------------------
GROUND_TRUTH_LAMBDA_ACCOUNTS: dict[str, str] = {
    "us-east-1": "432418664414",
    "us-east-2": "266458841044",
    "us-west-2": "081040173940",
    "ca-central-1": "918755190332",
    "eu-west-1": "568282634449",
    "eu-west-2": "487402164563",
    "eu-central-1": "203001061592",
    "ap-northeast-1": "477331159723",
    "ap-northeast-2": "845288260483",
    "ap-south-1": "565803892007",
    "ap-southeast-1": "377565633583",
    "ap-southeast-2": "454466003867",
}

#: The API reference gives one account for the auto-labeling algorithm specifications, with only the region varying:
#: ``arn:aws:sagemaker:<region>:027400017018:labeling-job-algorithm-specification/<algorithm>``.
AUTO_LABELING_ACCOUNT = "027400017018"
AUTO_LABELING_REGIONS: tuple[str, ...] = tuple(GROUND_TRUTH_LAMBDA_ACCOUNTS)

#: "Using the Amazon Mechanical Turk Workforce" (SageMaker developer guide): the public workforce's work team is
#: ``arn:aws:sagemaker:<region>:394669845002:workteam/public-crowd/default``.
PUBLIC_WORKFORCE_ACCOUNT = "394669845002"

#: BlazingText's image account per region, from the SageMaker Python SDK's ``image_uri_config/blazingtext.json``
#: (the regions the seed's Part 1 names; GROUND_TRUTH.md): ``<account>.dkr.ecr.<region>.amazonaws.com/blazingtext:1``.
BLAZINGTEXT_ACCOUNTS: dict[str, str] = {
    "us-east-1": "811284229777",
    "us-east-2": "825641698319",
    "us-west-2": "433757028032",
    "eu-west-1": "685385470294",
    "eu-central-1": "813361260812",
    "ap-northeast-1": "501404015308",
    "ap-southeast-2": "544295431143",
}

CONTENT_CLASSIFIERS = ("FreeOfPersonallyIdentifiableInformation", "FreeOfAdultContent")


class TaskType(StrEnum):
    """Built-in Ground Truth task types with presets, plus ``custom`` (the caller brings the Lambdas)."""

    BOUNDING_BOX = "bounding_box"
    IMAGE_CLASSIFICATION = "image_classification"
    IMAGE_MULTI_LABEL_CLASSIFICATION = "image_multi_label_classification"
    TEXT_CLASSIFICATION = "text_classification"
    TEXT_MULTI_LABEL_CLASSIFICATION = "text_multi_label_classification"
    SEMANTIC_SEGMENTATION = "semantic_segmentation"
    CUSTOM = "custom"


@dataclass(frozen=True)
class TaskPreset:
    """What a built-in task type fixes: its Lambda function suffix and, if it supports auto-labeling, the algorithm."""

    lambda_suffix: str | None
    auto_labeling_algorithm: str | None


# Auto-labeling exists only for single-label classification, boxes and segmentation (developer guide,
# "Automate data labeling"); multi-label and custom tasks have no algorithm.
TASK_PRESETS: dict[TaskType, TaskPreset] = {
    TaskType.BOUNDING_BOX: TaskPreset("BoundingBox", "object-detection"),
    TaskType.IMAGE_CLASSIFICATION: TaskPreset("ImageMultiClass", "image-classification"),
    TaskType.IMAGE_MULTI_LABEL_CLASSIFICATION: TaskPreset("ImageMultiClassMultiLabel", None),
    TaskType.TEXT_CLASSIFICATION: TaskPreset("TextMultiClass", "text-classification"),
    TaskType.TEXT_MULTI_LABEL_CLASSIFICATION: TaskPreset("TextMultiClassMultiLabel", None),
    TaskType.SEMANTIC_SEGMENTATION: TaskPreset("SemanticSegmentation", "semantic-segmentation"),
    TaskType.CUSTOM: TaskPreset(None, None),
}


def supported_regions() -> tuple[str, ...]:
    """Regions where the AWS documentation lists the built-in Ground Truth Lambdas."""
    return tuple(GROUND_TRUTH_LAMBDA_ACCOUNTS)


def _lambda_account(region: str) -> str:
    try:
        return GROUND_TRUTH_LAMBDA_ACCOUNTS[region]
    except KeyError:
        raise ValueError(
            f"Ground Truth built-in task types are not documented for region {region!r}; "
            f"supported regions: {', '.join(sorted(GROUND_TRUTH_LAMBDA_ACCOUNTS))}. "
            "Use task_type='custom' with your own Lambda ARNs elsewhere."
        ) from None


def builtin_lambda_arns(task_type: TaskType | str, region: str) -> tuple[str, str]:
    """Return ``(PreHumanTaskLambdaArn, AnnotationConsolidationLambdaArn)`` for a built-in task type in a region."""
    task_type = TaskType(task_type)
    suffix = TASK_PRESETS[task_type].lambda_suffix
    if suffix is None:
        raise ValueError(f"Task type {task_type.value!r} has no built-in Lambdas; pass both Lambda ARNs yourself.")
    account = _lambda_account(region)
    return (
        f"arn:aws:lambda:{region}:{account}:function:PRE-{suffix}",
        f"arn:aws:lambda:{region}:{account}:function:ACS-{suffix}",
    )


def auto_labeling_algorithm_arn(task_type: TaskType | str, region: str) -> str:
    """Return the ``LabelingJobAlgorithmSpecificationArn`` for a task type that supports auto-labeling."""
    task_type = TaskType(task_type)
    algorithm = TASK_PRESETS[task_type].auto_labeling_algorithm
    if algorithm is None:
        supported = sorted(t.value for t, p in TASK_PRESETS.items() if p.auto_labeling_algorithm)
        raise ValueError(
            f"Task type {task_type.value!r} does not support auto-labeling; it exists for: {', '.join(supported)}."
        )
    if region not in AUTO_LABELING_REGIONS:
        raise ValueError(
            f"Ground Truth auto-labeling is not documented for region {region!r}; "
            f"supported regions: {', '.join(sorted(AUTO_LABELING_REGIONS))}."
        )
    return f"arn:aws:sagemaker:{region}:{AUTO_LABELING_ACCOUNT}:labeling-job-algorithm-specification/{algorithm}"


def blazingtext_image(region: str) -> str:
    """The region's BlazingText training and inference image."""
    account = BLAZINGTEXT_ACCOUNTS.get(region)
    if account is None:
        raise ValueError(
            f"no BlazingText image known for region {region!r} (known: {', '.join(sorted(BLAZINGTEXT_ACCOUNTS))}); "
            "set model.image in the config"
        )
    return f"{account}.dkr.ecr.{region}.amazonaws.com/blazingtext:1"


def public_workforce_arn(region: str) -> str:
    """The Amazon Mechanical Turk work team ARN in a region."""
    _lambda_account(region)  # the public workforce is only usable where the built-in Lambdas exist
    return f"arn:aws:sagemaker:{region}:{PUBLIC_WORKFORCE_ACCOUNT}:workteam/public-crowd/default"


# --------------------------------------------------------------------------------------------------------------------
# Job names.
# --------------------------------------------------------------------------------------------------------------------
MAX_JOB_NAME_LENGTH = 63
_HASH_LENGTH = 12  # base32: 60 bits, so unrelated names collide with odds ~1e-18 per pair
_ATTEMPT_RESERVE = len("-a999")  # room kept so attempt suffixes never shorten the readable part
JOB_NAME_PATTERN = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")


def _slug(value: object, limit: int) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", str(value).lower()).strip("-")
    return slug[:limit].strip("-") or "x"


def labeling_job_name(dag_id: str, run_id: str, task_id: str, iteration: int | str, attempt: int = 0) -> str:
    """
    A valid, deterministic labeling job name for one (DAG, run, task, iteration).

    ``<dag>-<task>-<iteration>-<hash>`` in lower case: the readable part is truncated to fit 63 characters, the
    12-character hash covers the exact (case-sensitive) inputs, including the run id. Lower case everywhere makes
    names that differ only in case impossible, which matters because the service treats names case-insensitively.
    ``attempt > 0`` appends ``-a<attempt>`` for a deliberately fresh attempt (``restart_failed_job``); the same
    suffix the operator uses when it looks for later attempts.
    """
    identity = json.dumps([dag_id, run_id, task_id, str(iteration)], separators=(",", ":"))
    digest = base64.b32encode(hashlib.sha256(identity.encode()).digest()).decode().lower()[:_HASH_LENGTH]
    iteration_slug = _slug(iteration, 8)
    budget = MAX_JOB_NAME_LENGTH - _HASH_LENGTH - _ATTEMPT_RESERVE - len(iteration_slug) - 3  # three dashes
    dag_slug, task_slug = _slug(dag_id, budget), _slug(task_id, budget)
    # Share the budget fairly: the shorter of dag and task keeps its full length, the longer one is cut.
    dag_limit = max(budget // 2, budget - len(task_slug))
    dag_slug = _slug(dag_slug, dag_limit)
    task_slug = _slug(task_slug, budget - len(dag_slug))
    return with_attempt_suffix(f"{dag_slug}-{task_slug}-{iteration_slug}-{digest}", attempt)


def with_attempt_suffix(name: str, attempt: int) -> str:
    """``name`` for attempt 0, else ``name`` (truncated if needed) + ``-a<attempt>``, still ≤ 63 characters."""
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 0:
        raise ValueError(f"attempt must be a non-negative integer, got {attempt!r}")
    if attempt == 0:
        return name
    suffix = f"-a{attempt}"
    return name[: MAX_JOB_NAME_LENGTH - len(suffix)].rstrip("-") + suffix


# --------------------------------------------------------------------------------------------------------------------
# Typed configuration.
# --------------------------------------------------------------------------------------------------------------------
_WORKTEAM_ARN = re.compile(r"arn:aws[a-z\-]*:sagemaker:[a-z0-9\-]*:[0-9]{12}:workteam/.+")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PublicWorkforce(_Strict):
    """Amazon Mechanical Turk: paid per task at ``price_usd`` per worker, e.g. ``0.036``."""

    kind: Literal["public"] = "public"
    price_usd: Decimal

    @field_validator("price_usd", mode="before")
    @classmethod
    def _exact_price(cls, value: Any) -> Decimal:
        usd_price(value)  # raises with the reason
        return Decimal(str(value)) if isinstance(value, float) else Decimal(value)


class PrivateWorkforce(_Strict):
    """Your own workers: a private work team ARN."""

    kind: Literal["private"] = "private"
    workteam_arn: str

    @field_validator("workteam_arn")
    @classmethod
    def _arn(cls, value: str) -> str:
        if not _WORKTEAM_ARN.fullmatch(value):
            raise ValueError(f"{value!r} is not a work team ARN (arn:aws:sagemaker:<region>:<account>:workteam/...)")
        return value


class VendorWorkforce(PrivateWorkforce):
    """A vendor from AWS Marketplace: the work team ARN of your subscription."""

    kind: Literal["vendor"] = "vendor"  # type: ignore[assignment]


Workforce = Annotated[PublicWorkforce | PrivateWorkforce | VendorWorkforce, Field(discriminator="kind")]


class LabelingJobConfig(_Strict):
    """
    One labeling job in domain terms. :func:`build_create_labeling_job_request` turns it into the request.

    Built-in task types fill in the PRE-/ACS- Lambdas (and the auto-labeling algorithm) for ``region``;
    ``custom`` requires both Lambda ARNs.
    """

    job_name: str
    region: str
    task_type: TaskType
    label_attribute_name: str
    input_manifest_s3_uri: str
    output_s3_uri: str
    role_arn: str
    task_title: str
    task_description: str
    workforce: Workforce
    ui_template_s3_uri: str | None = None
    human_task_ui_arn: str | None = None
    label_category_config_s3_uri: str | None = None
    task_keywords: list[str] = Field(default_factory=list)
    workers_per_object: int = Field(1, ge=1, le=9)
    task_time_limit_seconds: int = Field(300, ge=30, le=28_800)
    task_availability_lifetime_seconds: int | None = Field(None, ge=60)
    max_concurrent_task_count: int | None = Field(None, ge=1, le=5000)
    pre_human_task_lambda_arn: str | None = None
    annotation_consolidation_lambda_arn: str | None = None
    auto_labeling: bool = False
    initial_model_arn: str | None = None
    volume_kms_key_id: str | None = None
    content_classifiers: list[Literal["FreeOfPersonallyIdentifiableInformation", "FreeOfAdultContent"]] = Field(
        default_factory=list
    )
    max_human_labeled_object_count: int | None = Field(None, ge=1)
    max_percentage_labeled: int | None = Field(None, ge=1, le=100)
    output_kms_key_id: str | None = None
    sns_topic_arn: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)

    @field_validator("label_attribute_name")
    @classmethod
    def _attribute_name(cls, value: str) -> str:
        if value.endswith("-metadata"):
            raise ValueError("must not end in '-metadata' (Ground Truth writes '<attr>-metadata' next to '<attr>')")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> LabelingJobConfig:
        if (self.ui_template_s3_uri is None) == (self.human_task_ui_arn is None):
            raise ValueError("give exactly one of ui_template_s3_uri and human_task_ui_arn")
        if self.task_type is TaskType.CUSTOM:
            if not (self.pre_human_task_lambda_arn and self.annotation_consolidation_lambda_arn):
                raise ValueError(
                    "task_type 'custom' needs pre_human_task_lambda_arn and annotation_consolidation_lambda_arn"
                )
        elif not (self.pre_human_task_lambda_arn and self.annotation_consolidation_lambda_arn):
            _lambda_account(self.region)  # the unsupported-region error, at config time
        if self.auto_labeling:
            auto_labeling_algorithm_arn(self.task_type, self.region)
        elif self.initial_model_arn or self.volume_kms_key_id:
            raise ValueError("initial_model_arn and volume_kms_key_id only apply with auto_labeling=True")
        if (
            isinstance(self.workforce, PublicWorkforce)
            and "FreeOfPersonallyIdentifiableInformation" not in self.content_classifiers
        ):
            # The service fails Mechanical Turk jobs whose data is not declared PII-free; that declaration is the
            # caller's to make, so we ask for it instead of adding it silently.
            raise ValueError(
                "the public (Mechanical Turk) workforce requires content_classifiers to include "
                "'FreeOfPersonallyIdentifiableInformation' (declare your data PII-free, or use a private workforce)"
            )
        return self


def build_create_labeling_job_request(config: LabelingJobConfig | Mapping[str, Any]) -> dict[str, Any]:
    """Build (and validate against botocore's model) the ``CreateLabelingJob`` request for ``config``."""
    if not isinstance(config, LabelingJobConfig):
        config = LabelingJobConfig.model_validate(config)

    if config.pre_human_task_lambda_arn and config.annotation_consolidation_lambda_arn:
        pre_lambda, acs_lambda = config.pre_human_task_lambda_arn, config.annotation_consolidation_lambda_arn
    else:
        pre_lambda, acs_lambda = builtin_lambda_arns(config.task_type, config.region)

    workforce = config.workforce
    human_task: dict[str, Any] = {
        "WorkteamArn": public_workforce_arn(config.region)
        if isinstance(workforce, PublicWorkforce)
        else workforce.workteam_arn,
        "UiConfig": {"UiTemplateS3Uri": config.ui_template_s3_uri}
        if config.ui_template_s3_uri
        else {"HumanTaskUiArn": config.human_task_ui_arn},
        "PreHumanTaskLambdaArn": pre_lambda,
        "TaskTitle": config.task_title,
        "TaskDescription": config.task_description,
        "NumberOfHumanWorkersPerDataObject": config.workers_per_object,
        "TaskTimeLimitInSeconds": config.task_time_limit_seconds,
        "AnnotationConsolidationConfig": {"AnnotationConsolidationLambdaArn": acs_lambda},
    }
    if config.task_keywords:
        human_task["TaskKeywords"] = list(config.task_keywords)
    if config.task_availability_lifetime_seconds is not None:
        human_task["TaskAvailabilityLifetimeInSeconds"] = config.task_availability_lifetime_seconds
    if config.max_concurrent_task_count is not None:
        human_task["MaxConcurrentTaskCount"] = config.max_concurrent_task_count
    if isinstance(workforce, PublicWorkforce):
        human_task["PublicWorkforceTaskPrice"] = usd_price(workforce.price_usd)

    input_config: dict[str, Any] = {"DataSource": {"S3DataSource": {"ManifestS3Uri": config.input_manifest_s3_uri}}}
    if config.content_classifiers:
        input_config["DataAttributes"] = {"ContentClassifiers": list(dict.fromkeys(config.content_classifiers))}

    output_config: dict[str, Any] = {"S3OutputPath": config.output_s3_uri}
    if config.output_kms_key_id:
        output_config["KmsKeyId"] = config.output_kms_key_id
    if config.sns_topic_arn:
        output_config["SnsTopicArn"] = config.sns_topic_arn

    request: dict[str, Any] = {
        "LabelingJobName": config.job_name,
        "LabelAttributeName": config.label_attribute_name,
        "InputConfig": input_config,
        "OutputConfig": output_config,
        "RoleArn": config.role_arn,
        "HumanTaskConfig": human_task,
    }
    if config.label_category_config_s3_uri:
        request["LabelCategoryConfigS3Uri"] = config.label_category_config_s3_uri

    stopping = {
        "MaxHumanLabeledObjectCount": config.max_human_labeled_object_count,
        "MaxPercentageOfInputDatasetLabeled": config.max_percentage_labeled,
    }
    if any(v is not None for v in stopping.values()):
        request["StoppingConditions"] = {k: v for k, v in stopping.items() if v is not None}

    if config.auto_labeling:
        algorithms: dict[str, Any] = {
            "LabelingJobAlgorithmSpecificationArn": auto_labeling_algorithm_arn(config.task_type, config.region)
        }
        if config.initial_model_arn:
            algorithms["InitialActiveLearningModelArn"] = config.initial_model_arn
        if config.volume_kms_key_id:
            algorithms["LabelingJobResourceConfig"] = {"VolumeKmsKeyId": config.volume_kms_key_id}
        request["LabelingJobAlgorithmsConfig"] = algorithms

    if config.tags:
        request["Tags"] = [{"Key": k, "Value": v} for k, v in config.tags.items()]

    validate_request(request)
    return request


# --------------------------------------------------------------------------------------------------------------------
# Validation against botocore's service model.
# --------------------------------------------------------------------------------------------------------------------
class RequestValidationError(ValueError):
    """A request breaks the service model; ``problems`` lists each one, each starting with the field's path."""

    def __init__(self, operation: str, problems: Sequence[str]):
        self.operation = operation
        self.problems = list(problems)
        noun = "problem" if len(self.problems) == 1 else "problems"
        super().__init__(f"Invalid {operation} request, {len(self.problems)} {noun}: " + "; ".join(self.problems))


@functools.cache
def _sagemaker_model():
    import botocore.session

    return botocore.session.get_session().get_service_model("sagemaker")


def operation_input_shape(operation: str) -> Shape:
    return _sagemaker_model().operation_model(operation).input_shape


# Unicode separators (\p{Z}); Python's \s would also admit tabs and newlines, which are control characters.
_UNICODE_SEPARATORS = r" \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"


@functools.cache
def _compiled_pattern(pattern: str) -> re.Pattern[str]:
    # botocore patterns are Java regexes. Python's `re` lacks \p{..}: inside the tag classes where they occur, \w
    # stands for letters+digits (it also admits "_", which those classes allow anyway).
    translated = pattern.replace(r"\p{L}", r"\w").replace(r"\p{N}", r"\w").replace(r"\p{Z}", _UNICODE_SEPARATORS)
    # AWS patterns are whole-value patterns; DOTALL because the service's `.+` does not reject multi-line text.
    return re.compile(translated, re.DOTALL)


def _path(parent: str, member: str) -> str:
    return f"{parent}.{member}" if parent else member


def _check(shape: Shape, value: Any, path: str, problems: list[str]) -> None:
    meta = shape.metadata
    kind = shape.type_name
    where = path or shape.name
    if kind == "structure":
        if not isinstance(value, Mapping):
            problems.append(f"{where}: expected an object, got {type(value).__name__}")
            return
        for name in shape.required_members:
            if value.get(name) is None:
                problems.append(f"{_path(path, name)}: required")
        for name, member_value in value.items():
            if name not in shape.members:
                problems.append(f"{_path(path, str(name))}: unknown field (valid: {', '.join(shape.members)})")
            elif member_value is not None:
                _check(shape.members[name], member_value, _path(path, name), problems)
        return
    if kind == "list":
        if not isinstance(value, list | tuple):
            problems.append(f"{where}: expected a list, got {type(value).__name__}")
            return
        _check_size(meta, len(value), "items", where, problems)
        for index, item in enumerate(value):
            _check(shape.member, item, f"{where}[{index}]", problems)
        return
    if kind == "map":
        if not isinstance(value, Mapping):
            problems.append(f"{where}: expected an object, got {type(value).__name__}")
            return
        _check_size(meta, len(value), "entries", where, problems)
        for key, item in value.items():
            _check(shape.key, key, f"{where} key {key!r}", problems)
            _check(shape.value, item, f"{where}[{key!r}]", problems)
        return
    if kind == "string":
        if not isinstance(value, str):
            problems.append(f"{where}: expected a string, got {type(value).__name__}")
            return
        _check_size(meta, len(value), "characters", where, problems)
        if "enum" in meta and value not in meta["enum"]:
            problems.append(f"{where}: {value!r} is not one of {', '.join(meta['enum'])}")
        if "pattern" in meta and not _compiled_pattern(meta["pattern"]).fullmatch(value):
            problems.append(f"{where}: {_shorten(value)!r} does not match the pattern {meta['pattern']}")
        return
    if kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"{where}: expected an integer, got {type(value).__name__}")
            return
        if "min" in meta and value < meta["min"]:
            problems.append(f"{where}: {value} is below the minimum {meta['min']}")
        if "max" in meta and value > meta["max"]:
            problems.append(f"{where}: {value} is above the maximum {meta['max']}")
        return
    if kind in ("float", "double"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            problems.append(f"{where}: expected a number, got {type(value).__name__}")
        return
    if kind == "boolean" and not isinstance(value, bool):
        problems.append(f"{where}: expected true or false, got {type(value).__name__}")


def _check_size(meta: Mapping[str, Any], size: int, unit: str, where: str, problems: list[str]) -> None:
    if "min" in meta and size < meta["min"]:
        problems.append(f"{where}: {size} {unit}, the minimum is {meta['min']}")
    if "max" in meta and size > meta["max"]:
        problems.append(f"{where}: {size} {unit}, the maximum is {meta['max']}")


def _shorten(value: str, limit: int = 80) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def request_problems(request: Mapping[str, Any], operation: str = "CreateLabelingJob") -> list[str]:
    """Every way ``request`` breaks the service model of ``operation``, each naming the field's path."""
    problems: list[str] = []
    _check(operation_input_shape(operation), request, "", problems)
    if operation == "CreateLabelingJob":
        attribute = request.get("LabelAttributeName")
        if isinstance(attribute, str) and attribute.endswith("-metadata"):
            # Documented, but not expressible in the model's pattern.
            problems.append("LabelAttributeName: must not end in '-metadata'")
    return problems


def validate_request(request: Mapping[str, Any], operation: str = "CreateLabelingJob") -> None:
    """Raise :class:`RequestValidationError` unless ``request`` satisfies botocore's model for ``operation``."""
    problems = request_problems(request, operation)
    if problems:
        raise RequestValidationError(operation, problems)


_INTEGER_TEXT = re.compile(r"[+-]?\d+")


def coerce_request_types(request: Mapping[str, Any], operation: str = "CreateLabelingJob") -> dict[str, Any]:
    """
    A deep copy of ``request`` with numbers and booleans that Jinja rendered as text turned back into values.

    Templated fields render to strings unless the DAG renders native objects; the model says which members are
    integers or booleans, so ``"3"`` becomes ``3`` only where the service expects a number.
    """
    result = copy.deepcopy(dict(request))
    return _coerce(operation_input_shape(operation), result)


def _coerce(shape: Shape, value: Any) -> Any:
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        for name, member_value in value.items():
            if name in shape.members:
                value[name] = _coerce(shape.members[name], member_value)
        return value
    if kind == "list" and isinstance(value, list):
        return [_coerce(shape.member, item) for item in value]
    if kind == "map" and isinstance(value, dict):
        return {key: _coerce(shape.value, item) for key, item in value.items()}
    if kind in ("integer", "long") and isinstance(value, str) and _INTEGER_TEXT.fullmatch(value.strip()):
        return int(value)
    if kind == "boolean" and isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return value
