"""The data stages every DAG family shares: where a unit of work lives in S3, small JSON records, the bucket,
the Open Images class selection, the worker UI files and the bounding-box request.

The DAG files import this module at parse time (through the family modules), so anything heavy (pandas, PIL) is
imported inside the function that needs it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from groundtruth.config import ExperimentConfig, LabelingSettings, NightlyConfig, SourceConfig
from groundtruth.manifests import bounding_box_template, class_labels, instructions_png
from groundtruth.requests import CONTENT_CLASSIFIERS, LabelingJobConfig, TaskType, build_create_labeling_job_request

if TYPE_CHECKING:
    from collections.abc import Callable

    from groundtruth.openimages import Candidate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class S3Layout:
    """Where one unit of work (an experiment run, a nightly shard, an active-learning run) keeps everything:
    s3://<bucket>/<root>/..."""

    bucket: str
    root: str

    def key(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def uri(self, *parts: str) -> str:
        return f"s3://{self.bucket}/{self.key(*parts)}"

    def child(self, *parts: str) -> S3Layout:
        return S3Layout(self.bucket, self.key(*parts))


def run_key(run_id: str) -> str:
    """A readable, S3- and job-name-safe key unique to one DAG run."""
    slug = re.sub(r"[^a-z0-9]+", "-", run_id.lower()).strip("-")[:32].strip("-")
    return f"{slug}-{hashlib.sha256(run_id.encode()).hexdigest()[:8]}"


def read_json(s3, bucket: str, key: str) -> dict | None:
    """A JSON record, or None when the key does not exist."""
    from botocore.exceptions import ClientError

    from groundtruth.aws_errors import is_missing_s3_object

    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if is_missing_s3_object(exc):
            return None
        raise
    return json.loads(body)


def put_json(s3, bucket: str, key: str, value: dict) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(value, indent=1).encode(), ContentType="application/json")


def exists(s3, bucket: str, key: str) -> bool:
    from groundtruth.openimages import head_sizes

    return head_sizes(s3, bucket, [key], workers=1)[key] is not None


def ensure_bucket(s3, config: LabelingSettings) -> None:
    """The config's bucket exists afterwards (created when `create_bucket` says so), else ValueError naming it."""
    from botocore.exceptions import ClientError

    from groundtruth.aws_errors import is_missing_s3_object

    try:
        s3.head_bucket(Bucket=config.bucket)
    except ClientError as exc:
        if not is_missing_s3_object(exc):
            raise
        if not config.create_bucket:
            raise ValueError(
                f"bucket {config.bucket!r} does not exist; create it (same region as the jobs) "
                "or set create_bucket: true in the config file"
            ) from exc
        kwargs = {}
        if config.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": config.region}
        s3.create_bucket(Bucket=config.bucket, **kwargs)
        log.info("created bucket %s in %s", config.bucket, config.region)


def select_class_images(
    s3,
    src: SourceConfig,
    class_id: str,
    skip: list[str],
    max_image_mb: float,
    limit: int,
    workers: int,
    after: str | None = None,
    on_window: Callable[[str, list[Candidate], dict[str, int]], None] | None = None,
) -> tuple[set[str], list[Candidate], dict[str, int]]:
    """The first `limit` qualifying images of `class_id` and its subclasses, in annotation-file order (stable).

    `after`: start after this image (the last of an earlier selection in the same order), heading nothing before it;
    a LookupError names it when the file does not hold it. `on_window`: see `select_images` (progress to resume
    from). Every request is paced by one `S3Pacer`, so a SlowDown storm slows the selection down instead of failing it.
    Returns (the class subtree, the chosen candidates with their boxes, counts of what was skipped and why).
    """
    from groundtruth.openimages import (
        S3Pacer,
        class_subtree,
        head_sizes,
        iter_candidates,
        select_images,
        skip_through,
    )

    pacer = S3Pacer(workers)
    hierarchy = json.loads(
        pacer.call(
            f"reading s3://{src.bucket}/{src.hierarchy_key}",
            lambda: s3.get_object(Bucket=src.bucket, Key=src.hierarchy_key)["Body"].read(),
        )
    )
    classes = class_subtree(hierarchy, class_id)
    log.info("selection: %s and %d subclasses", class_id, len(classes) - 1)
    body = pacer.call(
        f"opening s3://{src.bucket}/{src.annotations_key}",
        lambda: s3.get_object(Bucket=src.bucket, Key=src.annotations_key)["Body"],
    )
    try:
        candidates = iter_candidates(body, classes, skip=set(skip))
        seen: set[str] = set()
        if after is not None:
            resumed = skip_through(candidates, after)
            if resumed is None:
                raise LookupError(
                    f"image {after} is not among the class's images in s3://{src.bucket}/{src.annotations_key}"
                )
            candidates, seen = resumed

        def sizes_of(image_ids: list[str]) -> dict[str, int | None]:
            keys = [f"{src.image_prefix}{i}.jpg" for i in image_ids]
            sizes = head_sizes(s3, src.bucket, keys, workers=workers, pacer=pacer)
            return {i: sizes[k] for i, k in zip(image_ids, keys, strict=True)}

        # Eight rounds of HEADs per window: the pool stays busy, and a retried try loses at most one window.
        window = max(32, 8 * workers)
        chosen, skipped = select_images(
            candidates, sizes_of, limit, int(max_image_mb * 1024 * 1024), window, seen, on_window
        )
    finally:
        body.close()
    return classes, chosen, skipped


@dataclass(frozen=True)
class JobInputs:
    manifest_uri: str
    labels_uri: str
    template_uri: str
    output_uri: str


def write_worker_ui(s3, layout: S3Layout, class_name: str, examples: list) -> dict[str, str]:
    """`class_labels.json` and `instructions.template` (with `instructions.png` when there are examples, given as
    (JPEG bytes, Open Images boxes)) under `layout`; returns their URIs."""
    s3.put_object(Bucket=layout.bucket, Key=layout.key("class_labels.json"), Body=class_labels([class_name]))
    picture = instructions_png(examples, class_name) if examples else None
    if picture:
        s3.put_object(Bucket=layout.bucket, Key=layout.key("instructions.png"), Body=picture)
    template = bounding_box_template(class_name, picture)
    s3.put_object(Bucket=layout.bucket, Key=layout.key("instructions.template"), Body=template.encode())
    return {"labels_uri": layout.uri("class_labels.json"), "template_uri": layout.uri("instructions.template")}


def _labeling_request(config: LabelingSettings, job_name: str, tags: dict[str, str], **task: Any) -> dict:
    """A CreateLabelingJob request: what the family's settings say (region, role, workforce, limits, attribute),
    plus the task-specific `LabelingJobConfig` fields in `task`."""
    return build_create_labeling_job_request(
        LabelingJobConfig(
            job_name=job_name,
            region=config.region,
            label_attribute_name=config.label_attribute,
            role_arn=config.role_arn,
            workforce=config.workforce,
            workers_per_object=config.workers_per_object,
            task_time_limit_seconds=config.task_time_limit_seconds,
            task_availability_lifetime_seconds=config.task_availability_seconds,
            max_concurrent_task_count=config.max_concurrent_tasks,
            content_classifiers=list(CONTENT_CLASSIFIERS),
            tags=tags,
            **task,
        )
    )


def bounding_box_request(
    config: ExperimentConfig | NightlyConfig,
    inputs: JobInputs,
    job_name: str,
    initial_model_arn: str | None,
    tags: dict[str, str],
) -> dict:
    """The notebook's bounding-box CreateLabelingJob request for `inputs`, from a family's labeling settings."""
    name = config.class_name
    return _labeling_request(
        config,
        job_name,
        tags,
        task_type=TaskType.BOUNDING_BOX,
        input_manifest_s3_uri=inputs.manifest_uri,
        output_s3_uri=inputs.output_uri,
        task_title=f"Please draw a box around each {name}.",
        task_description=f"Dear Annotator, please draw a box around each {name}. Thank you!",
        task_keywords=["image", "object", "detection"],
        ui_template_s3_uri=inputs.template_uri,
        label_category_config_s3_uri=inputs.labels_uri,
        auto_labeling=config.auto_labeling,
        initial_model_arn=initial_model_arn if config.auto_labeling else None,
    )


def text_classification_request(
    config: LabelingSettings,
    manifest_uri: str,
    labels_uri: str,
    template_uri: str,
    output_uri: str,
    job_name: str,
    tags: dict[str, str],
) -> dict:
    """A human-only single-label text-classification CreateLabelingJob request (the active-learning loop's human
    batches, as the seed sends them): the region's TextMultiClass Lambdas, no auto-labeling (the loop labels by its
    own model's margin), from a family's labeling settings."""
    return _labeling_request(
        config,
        job_name,
        tags,
        task_type=TaskType.TEXT_CLASSIFICATION,
        input_manifest_s3_uri=manifest_uri,
        output_s3_uri=output_uri,
        task_title="Classify each text into one of the categories.",
        task_description="Read each text and choose the one category that fits it best.",
        task_keywords=["text", "classification"],
        ui_template_s3_uri=template_uri,
        label_category_config_s3_uri=labels_uri,
        auto_labeling=False,
    )


REPORT_CONTENT_TYPES = {".json": "application/json", ".html": "text/html; charset=utf-8", ".png": "image/png"}


def publish_report(
    s3, layout: S3Layout, dag_id: str, run_id: str, render: Callable[[Path], dict[str, Path]]
) -> dict[str, str | None]:
    """Render a report's files into a directory and upload them under `<layout>/report/`.

    In demo mode (`GT_LOCAL_REPORTS_DIR` set) the directory is `<dir>/<dag_id>/<run_id>/` and stays; otherwise a
    temporary one. Returns `report_uri` (the HTML on S3) and `local_report` (its local path, or None)."""
    import os
    import tempfile

    local_root = os.environ.get("GT_LOCAL_REPORTS_DIR")
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = Path(local_root) / dag_id / run_id if local_root else Path(tmp)
        for path in render(out_dir).values():
            s3.put_object(
                Bucket=layout.bucket,
                Key=layout.key("report", path.name),
                Body=path.read_bytes(),
                ContentType=REPORT_CONTENT_TYPES.get(path.suffix, "text/plain"),
            )
    return {
        "report_uri": layout.uri("report", "report.html"),
        "local_report": str(out_dir / "report.html") if local_root else None,
    }
