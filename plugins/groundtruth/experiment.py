"""The experiment's data stages as plain functions: the DAG's tasks are thin shells around these.

Every S3 location is derived from (experiment prefix, run): a retried or cleared task finds its own earlier work
(selection file, copied images, manifests) and redoes nothing it already did; two runs never share a prefix.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import asdict, dataclass

from groundtruth.config import ExperimentConfig, SourceConfig
from groundtruth.manifests import bounding_box_template, class_labels, input_manifest, instructions_png
from groundtruth.openimages import (
    Candidate,
    class_subtree,
    copy_objects,
    existing_keys,
    head_sizes,
    iter_candidates,
    select_images,
    skip_through,
)

log = logging.getLogger(__name__)

ITERATIONS = {
    1: "first half, auto-labeling from scratch",
    2: "second half, starting from iteration 1's final model",
    3: "second half, from scratch (the fair baseline for iteration 2)",
}


def run_key(run_id: str) -> str:
    """A readable, S3- and job-name-safe key unique to one DAG run."""
    slug = re.sub(r"[^a-z0-9]+", "-", run_id.lower()).strip("-")[:32].strip("-")
    return f"{slug}-{hashlib.sha256(run_id.encode()).hexdigest()[:8]}"


@dataclass(frozen=True)
class RunLayout:
    """Where one run keeps everything, under s3://<bucket>/<prefix>/<experiment>/<run key>/."""

    bucket: str
    root: str

    @classmethod
    def of(cls, config: ExperimentConfig, run_id: str) -> RunLayout:
        return cls(config.bucket, f"{config.prefix}/{config.name}/{run_key(run_id)}")

    def key(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def uri(self, *parts: str) -> str:
        return f"s3://{self.bucket}/{self.key(*parts)}"


def _exists(s3, bucket: str, key: str) -> bool:
    return head_sizes(s3, bucket, [key], workers=1)[key] is not None


def ensure_bucket(s3, config: ExperimentConfig) -> None:
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
                "or set create_bucket: true in the experiment file"
            ) from exc
        kwargs = {}
        if config.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": config.region}
        s3.create_bucket(Bucket=config.bucket, **kwargs)
        log.info("created bucket %s in %s", config.bucket, config.region)


# -- 1. select ----------------------------------------------------------------------------------------------------
def select(s3, config: ExperimentConfig, layout: RunLayout) -> dict:
    """Pick the experiment's images and write them to `selection.json`; reuse that file when it exists."""
    ensure_bucket(s3, config)
    key = layout.key("selection.json")
    if _exists(s3, layout.bucket, key):
        selection = json.loads(s3.get_object(Bucket=layout.bucket, Key=key)["Body"].read())
        log.info("selection: reusing %s (%d images)", layout.uri("selection.json"), len(selection["images"]))
        return _selection_summary(selection, layout)
    classes, chosen, skipped = select_class_images(
        s3, config.source, config.class_id, config.skip_images, config.max_image_mb, config.images, config.copy_workers
    )
    if len(chosen) < config.images:
        raise ValueError(
            f"only {len(chosen)} images of class {config.class_id} qualify (asked for {config.images}; "
            f"skipped {skipped}); lower `images` or pick a larger annotation file"
        )
    selection = {
        "class_id": config.class_id,
        "classes": sorted(classes),
        "images": [c.image_id for c in chosen],
        "boxes": {c.image_id: c.boxes for c in chosen},
        "skipped": skipped,
    }
    s3.put_object(Bucket=layout.bucket, Key=key, Body=json.dumps(selection).encode())
    log.info("selection: %d images, skipped %s", len(chosen), skipped)
    return _selection_summary(selection, layout)


def select_class_images(
    s3,
    src: SourceConfig,
    class_id: str,
    skip: list[str],
    max_image_mb: float,
    limit: int,
    workers: int,
    after: str | None = None,
) -> tuple[set[str], list[Candidate], dict[str, int]]:
    """The first `limit` qualifying images of `class_id` and its subclasses, in annotation-file order (stable).

    `after`: start after this image (the last of an earlier selection in the same order), heading nothing before it;
    a LookupError names it when the file does not hold it.
    Returns (the class subtree, the chosen candidates with their boxes, counts of what was skipped and why).
    """
    hierarchy = json.loads(s3.get_object(Bucket=src.bucket, Key=src.hierarchy_key)["Body"].read())
    classes = class_subtree(hierarchy, class_id)
    log.info("selection: %s and %d subclasses", class_id, len(classes) - 1)
    body = s3.get_object(Bucket=src.bucket, Key=src.annotations_key)["Body"]
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
            sizes = head_sizes(s3, src.bucket, keys, workers=workers)
            return {i: sizes[k] for i, k in zip(image_ids, keys, strict=True)}

        chosen, skipped = select_images(candidates, sizes_of, limit, int(max_image_mb * 1024 * 1024), seen=seen)
    finally:
        body.close()
    return classes, chosen, skipped


def _selection_summary(selection: dict, layout: RunLayout) -> dict:
    return {
        "selection_uri": layout.uri("selection.json"),
        "images": len(selection["images"]),
        "boxes": sum(len(b) for b in selection["boxes"].values()),
        "skipped": selection["skipped"],
    }


def load_selection(s3, layout: RunLayout) -> dict:
    return json.loads(s3.get_object(Bucket=layout.bucket, Key=layout.key("selection.json"))["Body"].read())


# -- 2. copy ------------------------------------------------------------------------------------------------------
def copy(s3, config: ExperimentConfig, layout: RunLayout) -> dict:
    """Server-side copies of the selected images into the run's prefix, skipping what is already there."""
    selection = load_selection(s3, layout)
    src = config.source
    pairs = [
        (src.bucket, f"{src.image_prefix}{image_id}.jpg", layout.bucket, layout.key("images", f"{image_id}.jpg"))
        for image_id in selection["images"]
    ]
    present = existing_keys(s3, layout.bucket, layout.key("images") + "/")
    result = copy_objects(s3, pairs, workers=config.copy_workers, log=log.info, existing=present)
    return {**asdict(result), "images_prefix": layout.uri("images") + "/"}


# -- 3. manifests and the worker UI -------------------------------------------------------------------------------
@dataclass(frozen=True)
class JobInputs:
    manifest_uri: str
    labels_uri: str
    template_uri: str
    output_uri: str


def write_inputs(s3, config: ExperimentConfig, layout: RunLayout) -> dict:
    """Both halves' input manifests, `class_labels.json` and the instruction template (with example images)."""
    selection = load_selection(s3, layout)
    images = selection["images"]
    half = len(images) // 2
    refs = [layout.uri("images", f"{i}.jpg") for i in images]
    halves = {1: refs[:half], 2: refs[half:]}
    for part, chunk in halves.items():
        s3.put_object(
            Bucket=layout.bucket, Key=layout.key(f"iteration-{part}", "input.manifest"), Body=input_manifest(chunk)
        )
    # Two examples with their boxes drawn, as the notebook's instructions show (indices 1 and 3 there).
    examples = []
    for image_id in [images[i] for i in (1, 3) if i < len(images)]:
        jpeg = s3.get_object(Bucket=layout.bucket, Key=layout.key("images", f"{image_id}.jpg"))["Body"].read()
        examples.append((jpeg, [tuple(b) for b in selection["boxes"][image_id]]))
    write_worker_ui(s3, layout, config.class_name, examples)
    return {
        "iteration_1_manifest": layout.uri("iteration-1", "input.manifest"),
        "iteration_2_manifest": layout.uri("iteration-2", "input.manifest"),
        "labels_uri": layout.uri("class_labels.json"),
        "template_uri": layout.uri("instructions.template"),
        "objects": {"iteration-1": len(halves[1]), "iteration-2": len(halves[2]), "iteration-3": len(halves[2])},
    }


def write_worker_ui(s3, layout: RunLayout, class_name: str, examples: list) -> dict[str, str]:
    """`class_labels.json` and `instructions.template` (with `instructions.png` when there are examples, given as
    (JPEG bytes, Open Images boxes)) under `layout`; returns their URIs."""
    s3.put_object(Bucket=layout.bucket, Key=layout.key("class_labels.json"), Body=class_labels([class_name]))
    picture = instructions_png(examples, class_name) if examples else None
    if picture:
        s3.put_object(Bucket=layout.bucket, Key=layout.key("instructions.png"), Body=picture)
    template = bounding_box_template(class_name, picture)
    s3.put_object(Bucket=layout.bucket, Key=layout.key("instructions.template"), Body=template.encode())
    return {"labels_uri": layout.uri("class_labels.json"), "template_uri": layout.uri("instructions.template")}


def inputs_for(iteration: int, written: dict, layout: RunLayout) -> JobInputs:
    """Job 1 labels the first half; jobs 2 and 3 both label the second half (as the notebook does)."""
    manifest = written["iteration_1_manifest"] if iteration == 1 else written["iteration_2_manifest"]
    return JobInputs(
        manifest_uri=manifest,
        labels_uri=written["labels_uri"],
        template_uri=written["template_uri"],
        output_uri=layout.uri(f"iteration-{iteration}", "output") + "/",
    )


# -- 4. the labeling jobs' requests -------------------------------------------------------------------------------
def job_request(
    config: ExperimentConfig, iteration: int, inputs: JobInputs, job_name: str, initial_model_arn: str | None = None
) -> dict:
    """The CreateLabelingJob request of one iteration, as the notebook builds it (validated against botocore)."""
    return bounding_box_request(
        config, inputs, job_name, initial_model_arn, {"experiment": config.name, "iteration": str(iteration)}
    )


def bounding_box_request(
    config, inputs: JobInputs, job_name: str, initial_model_arn: str | None, tags: dict[str, str]
) -> dict:
    """The notebook's bounding-box CreateLabelingJob request for `inputs`, from any config carrying the labeling
    fields of ExperimentConfig (class_name, region, label_attribute, role_arn, workforce, workers_per_object, ...)."""
    from groundtruth.requests import LabelingJobConfig, TaskType, build_create_labeling_job_request

    name = config.class_name
    return build_create_labeling_job_request(
        LabelingJobConfig(
            job_name=job_name,
            region=config.region,
            task_type=TaskType.BOUNDING_BOX,
            label_attribute_name=config.label_attribute,
            input_manifest_s3_uri=inputs.manifest_uri,
            output_s3_uri=inputs.output_uri,
            role_arn=config.role_arn,
            task_title=f"Please draw a box around each {name}.",
            task_description=f"Dear Annotator, please draw a box around each {name}. Thank you!",
            task_keywords=["image", "object", "detection"],
            workforce=config.workforce,
            ui_template_s3_uri=inputs.template_uri,
            label_category_config_s3_uri=inputs.labels_uri,
            workers_per_object=config.workers_per_object,
            task_time_limit_seconds=config.task_time_limit_seconds,
            task_availability_lifetime_seconds=config.task_availability_seconds,
            max_concurrent_task_count=config.max_concurrent_tasks,
            auto_labeling=config.auto_labeling,
            initial_model_arn=initial_model_arn if config.auto_labeling else None,
            content_classifiers=["FreeOfPersonallyIdentifiableInformation", "FreeOfAdultContent"],
            tags=tags,
        )
    )


# -- 5. the comparison report -------------------------------------------------------------------------------------
REPORT_FILES = {"json": "application/json", "html": "text/html; charset=utf-8"}


def report(
    s3, logs, sagemaker, config: ExperimentConfig, layout: RunLayout, dag_id: str, run_id: str, jobs: list[dict]
) -> dict:
    """Read every job's outputs, judge the labels against the Open Images boxes, render and upload the report.

    The reference boxes are the ones the selection step read from the annotation CSV for exactly these images.
    In demo mode (`GT_LOCAL_REPORTS_DIR` set) the files are also written to `<dir>/<dag_id>/<run_id>/`.
    """
    import os
    import tempfile
    from pathlib import Path

    from groundtruth.outputs import read_job_outputs
    from groundtruth.report import JobSummaryInput, build_report, reference_pixel_boxes, render_report, summary_text

    selection = load_selection(s3, layout)
    inputs = []
    for key, job in zip(("iteration-1", "iteration-2", "iteration-3"), jobs, strict=True):
        description = sagemaker.describe_labeling_job(LabelingJobName=job["LabelingJobName"])
        outputs = read_job_outputs(s3, logs, description)
        references = reference_pixel_boxes(selection["boxes"], outputs.labels)
        inputs.append(
            JobSummaryInput(key, description, outputs, references=references, service_fee_usd=config.service_fee_usd)
        )
    result = build_report(config.name, dag_id, run_id, inputs)
    local_root = os.environ.get("GT_LOCAL_REPORTS_DIR")
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = Path(local_root) / dag_id / run_id if local_root else Path(tmp)
        files = render_report(result, out_dir)
        for path in files.values():
            content_type = "image/png" if path.suffix == ".png" else REPORT_FILES.get(path.suffix[1:], "text/plain")
            s3.put_object(
                Bucket=layout.bucket,
                Key=layout.key("report", path.name),
                Body=path.read_bytes(),
                ContentType=content_type,
            )
    log.info("report:\n%s", summary_text(result))
    return {
        "report_uri": layout.uri("report", "report.html"),
        "local_report": str(out_dir / "report.html") if local_root else None,
        "jobs": [
            {k: job.get(k) for k in ("key", "job_name", "machine_labeled_pct", "cost_usd")} for job in result["jobs"]
        ],
    }
