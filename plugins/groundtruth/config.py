"""Experiment configuration: `include/experiments/<name>.yaml`, validated before any DAG is built from it.

A bad file raises ConfigError naming the file and the field, so the DAG factory can surface it as that file's
import error while every other experiment still loads.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from groundtruth.requests import PublicWorkforce, Workforce

BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
ROLE_RE = re.compile(r"^arn:aws[a-z\-]*:iam::\d{12}:role/.+$")
LABEL_NAME_RE = re.compile(r"^/m/[0-9a-z_]+$")


class ConfigError(ValueError):
    """An experiment file that cannot become a DAG; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceConfig(_Strict):
    bucket: str = "open-images-dataset"
    image_prefix: str = "test/"
    annotations_key: str = "annotations/test-annotations-bbox.csv"
    hierarchy_key: str = "annotations/bbox_labels_600_hierarchy.json"


class ExperimentConfig(_Strict):
    """What to label, how and where; every field a person may change is also a DAG Param."""

    name: str
    description: str = ""
    owner: str = "ml-data-ops"
    tags: list[str] = Field(default_factory=lambda: ["groundtruth", "experiment"])
    schedule: str | None = None
    aws_conn_id: str = "aws_default"
    region: str = "us-east-1"
    bucket: str
    create_bucket: bool = False
    prefix: str = "ground-truth-experiments"
    role_arn: str
    source: SourceConfig = Field(default_factory=SourceConfig)
    class_id: str
    class_name: str
    images: Annotated[int, Field(ge=2, le=100_000)] = 2500
    max_image_mb: Annotated[float, Field(gt=0, le=100)] = 6.0
    skip_images: list[str] = Field(default_factory=list)
    label_attribute: str = "category"
    workforce: Workforce = Field(default_factory=lambda: PublicWorkforce(price_usd="0.036"))
    workers_per_object: Annotated[int, Field(ge=1, le=9)] = 3
    max_concurrent_tasks: Annotated[int, Field(ge=1, le=5000)] = 200
    task_time_limit_seconds: Annotated[int, Field(ge=30, le=28_800)] = 300
    task_availability_seconds: Annotated[int, Field(ge=60, le=864_000)] = 21_600
    auto_labeling: bool = True
    service_fee_usd: Annotated[float, Field(ge=0)] = 0.08
    copy_workers: Annotated[int, Field(ge=1, le=256)] = 32
    retries: Annotated[int, Field(ge=0, le=10)] = 2

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_]{0,40}", v):
            raise ValueError("must be 1-41 lowercase letters, digits or underscores (it becomes part of the DAG id)")
        return v

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, v: str) -> str:
        if not BUCKET_RE.match(v):
            raise ValueError(f"{v!r} is not a valid S3 bucket name")
        return v

    @field_validator("role_arn")
    @classmethod
    def _role(cls, v: str) -> str:
        if not ROLE_RE.match(v):
            raise ValueError(f"{v!r} is not an IAM role ARN")
        return v

    @field_validator("class_id")
    @classmethod
    def _class(cls, v: str) -> str:
        if not LABEL_NAME_RE.match(v):
            raise ValueError(f"{v!r} is not an Open Images LabelName like /m/015p6")
        return v

    @field_validator("label_attribute")
    @classmethod
    def _attribute(cls, v: str) -> str:
        if not re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,126}", v) or v.endswith("-metadata"):
            raise ValueError("must match [a-zA-Z0-9](-*[a-zA-Z0-9]){0,126} and not end in -metadata")
        return v

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        v = v.strip("/")
        if not v or ".." in v.split("/"):
            raise ValueError("must be a non-empty S3 key prefix without '..'")
        return v


def load_experiment(path: Path) -> ExperimentConfig:
    """Parse and validate one experiment file. The file stem must equal its `name`."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of fields")
    data.setdefault("name", path.stem)
    try:
        config = ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"field '{'.'.join(str(p) for p in err['loc']) or '(root)'}': {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from None
    if config.name != path.stem:
        raise ConfigError(f"{path}: field 'name' is {config.name!r} but the file is named {path.stem!r}")
    return config


def with_params(config: ExperimentConfig, params: dict) -> ExperimentConfig:
    """The config with a run's Param values applied (only keys the config knows), re-validated as a whole."""
    known = set(ExperimentConfig.model_fields)
    data = config.model_dump()
    for key, value in params.items():
        if key in known and value is not None:
            data[key] = value
    if "workforce_kind" in params or "price_usd" in params or "workteam_arn" in params:
        kind = params.get("workforce_kind") or data["workforce"]["kind"]
        workforce = {"kind": kind}
        if kind == "public":
            workforce["price_usd"] = str(params.get("price_usd", data["workforce"].get("price_usd", "0.036")))
        else:
            workforce["workteam_arn"] = params.get("workteam_arn") or data["workforce"].get("workteam_arn")
        data["workforce"] = workforce
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"param '{'.'.join(str(p) for p in e['loc'])}': {e['msg']}" for e in exc.errors())
        raise ConfigError(f"experiment {config.name}: {problems}") from None
