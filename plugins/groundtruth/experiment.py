"""The experiment's data stages as plain functions: the DAG's tasks are thin shells around these.

Every S3 location is derived from (experiment prefix, run): a retried or cleared task finds its own earlier work
(selection file, copied images, manifests) and redoes nothing it already did; two runs never share a prefix.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import asdict

from groundtruth.config import ExperimentConfig
from groundtruth.manifests import input_manifest
from groundtruth.stages import (
    JobInputs,
    S3Layout,
    bounding_box_request,
    ensure_bucket,
    exists,
    publish_report,
    put_json,
    read_json,
    run_key,
    select_class_images,
    write_worker_ui,
)

log = logging.getLogger(__name__)

ITERATIONS = {
    1: "first half, auto-labeling from scratch",
    2: "second half, starting from iteration 1's final model",
    3: "second half, from scratch (the fair baseline for iteration 2)",
}


def run_layout(config: ExperimentConfig, run_id: str) -> S3Layout:
    """Where one run keeps everything: s3://<bucket>/<prefix>/<experiment>/<run key>/."""
    return S3Layout(config.bucket, f"{config.prefix}/{config.name}/{run_key(run_id)}")


# -- 1. select ----------------------------------------------------------------------------------------------------
def select(s3, config: ExperimentConfig, layout: S3Layout) -> dict:
    """Pick the experiment's images and write them to `selection.json`; reuse that file when it exists.

    After each window of HEADs the selection so far goes to `selection.progress.json`: a try that stops midway (a
    storm outlasting every retry, a lost worker) is continued by the next one after its last judged image, with the
    same result as one uninterrupted selection.
    """
    from groundtruth.openimages import Candidate, S3Pacer

    pacer = S3Pacer(1)
    pacer.call(f"checking bucket {config.bucket}", lambda: ensure_bucket(s3, config))
    key = layout.key("selection.json")
    if exists(s3, layout.bucket, key):
        selection = json.loads(
            pacer.call(f"reading {layout.uri('selection.json')}", lambda: load_selection_bytes(s3, layout))
        )
        log.info("selection: reusing %s (%d images)", layout.uri("selection.json"), len(selection["images"]))
        return _selection_summary(selection, layout)
    progress_key = layout.key("selection.progress.json")
    progress = _selection_progress(s3, config, layout, pacer)
    earlier = [Candidate(i, progress["boxes"][i]) for i in progress["images"]] if progress else []
    skipped_earlier = progress["skipped"] if progress else {}

    def merged(skipped: dict[str, int]) -> dict[str, int]:
        return {k: skipped_earlier.get(k, 0) + v for k, v in skipped.items()}

    def record(last_judged: str, chosen: list[Candidate], skipped: dict[str, int]) -> None:
        images = earlier + chosen
        progress_record = {
            **_selection_inputs(config),
            "judged_through": last_judged,
            "images": [c.image_id for c in images],
            "boxes": {c.image_id: c.boxes for c in images},
            "skipped": merged(skipped),
        }
        pacer.call(
            f"writing {layout.uri('selection.progress.json')}",
            lambda: put_json(s3, layout.bucket, progress_key, progress_record),
        )

    args = (s3, config.source, config.class_id, config.skip_images, config.max_image_mb)
    remaining = config.images - len(earlier)
    try:
        classes, chosen, skipped = select_class_images(
            *args, remaining, config.copy_workers, progress["judged_through"] if progress else None, on_window=record
        )
    except LookupError as exc:  # the annotation file changed since the last try: its progress no longer applies
        log.warning("selection: %s; selecting from the start", exc)
        earlier, skipped_earlier, remaining = [], {}, config.images
        classes, chosen, skipped = select_class_images(*args, remaining, config.copy_workers, on_window=record)
    if progress:
        log.info(
            "selection: continued after image %s (%d images chosen by earlier tries)",
            progress["judged_through"],
            len(earlier),
        )
    chosen, skipped = earlier + chosen, merged(skipped)
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
    body = json.dumps(selection).encode()
    pacer.call(
        f"writing {layout.uri('selection.json')}", lambda: s3.put_object(Bucket=layout.bucket, Key=key, Body=body)
    )
    log.info("selection: %d images, skipped %s", len(chosen), skipped)
    return _selection_summary(selection, layout)


def _selection_inputs(config: ExperimentConfig) -> dict:
    """What decides a selection: progress recorded under other inputs (a changed Param) is not continued."""
    return {
        "class_id": config.class_id,
        "max_image_mb": config.max_image_mb,
        "skip_images": sorted(config.skip_images),
        "source": config.source.model_dump(mode="json"),
    }


def _selection_progress(s3, config: ExperimentConfig, layout: S3Layout, pacer) -> dict | None:
    """The last try's progress record when it applies to this config, else None."""
    uri = layout.uri("selection.progress.json")
    progress = pacer.call(f"reading {uri}", lambda: read_json(s3, layout.bucket, layout.key("selection.progress.json")))
    if progress is None:
        return None
    if {k: progress.get(k) for k in _selection_inputs(config)} != _selection_inputs(config):
        log.warning("selection: %s was recorded for other inputs; selecting from the start", uri)
        return None
    return progress


def _selection_summary(selection: dict, layout: S3Layout) -> dict:
    return {
        "selection_uri": layout.uri("selection.json"),
        "images": len(selection["images"]),
        "boxes": sum(len(b) for b in selection["boxes"].values()),
        "skipped": selection["skipped"],
    }


def load_selection(s3, layout: S3Layout) -> dict:
    return json.loads(load_selection_bytes(s3, layout))


def load_selection_bytes(s3, layout: S3Layout) -> bytes:
    return s3.get_object(Bucket=layout.bucket, Key=layout.key("selection.json"))["Body"].read()


# -- 2. copy ------------------------------------------------------------------------------------------------------
def copy(s3, config: ExperimentConfig, layout: S3Layout) -> dict:
    """Server-side copies of the selected images into the run's prefix, skipping what is already there."""
    from groundtruth.openimages import S3Pacer, copy_objects, existing_keys

    # One pacer for the whole stage: what the listing learned about throttling carries over to the copies.
    pacer = S3Pacer(config.copy_workers)
    selection = json.loads(
        pacer.call(f"reading {layout.uri('selection.json')}", lambda: load_selection_bytes(s3, layout))
    )
    src = config.source
    pairs = [
        (src.bucket, f"{src.image_prefix}{image_id}.jpg", layout.bucket, layout.key("images", f"{image_id}.jpg"))
        for image_id in selection["images"]
    ]
    present = existing_keys(s3, layout.bucket, layout.key("images") + "/", pacer=pacer)
    result = copy_objects(s3, pairs, workers=config.copy_workers, log=log.info, existing=present, pacer=pacer)
    return {**asdict(result), "images_prefix": layout.uri("images") + "/"}


# -- 3. manifests and the worker UI -------------------------------------------------------------------------------
def write_inputs(s3, config: ExperimentConfig, layout: S3Layout) -> dict:
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


def inputs_for(iteration: int, written: dict, layout: S3Layout) -> JobInputs:
    """Job 1 labels the first half; jobs 2 and 3 both label the second half (as the notebook does)."""
    manifest = written["iteration_1_manifest"] if iteration == 1 else written["iteration_2_manifest"]
    return JobInputs(
        manifest_uri=manifest,
        labels_uri=written["labels_uri"],
        template_uri=written["template_uri"],
        output_uri=layout.uri(f"iteration-{iteration}", "output") + "/",
    )


# -- 4. the labeling jobs' requests -------------------------------------------------------------------------------
def iteration_request(
    config: ExperimentConfig, dag_id: str, run_id: str, iteration: int, written: dict, previous: dict | None
) -> dict:
    """The request of `iteration`, named from (DAG, run, task, iteration); iteration 2 starts from `previous`'s
    final model. ValueError when auto-labeling is on and that job left no model (the config check makes this rare:
    a job of >= 1,250 objects that still ends without one)."""
    from groundtruth.requests import labeling_job_name

    model = (previous or {}).get("FinalActiveLearningModelArn")
    if previous is not None and config.auto_labeling and not model:
        raise ValueError(
            f"iteration {iteration} needs iteration 1's final model, but job "
            f"{previous.get('LabelingJobName')} reported no FinalActiveLearningModelArn"
        )
    name = labeling_job_name(dag_id, run_id, f"label_iteration_{iteration}", iteration)
    return job_request(config, iteration, inputs_for(iteration, written, run_layout(config, run_id)), name, model)


def job_request(
    config: ExperimentConfig, iteration: int, inputs: JobInputs, job_name: str, initial_model_arn: str | None = None
) -> dict:
    """The CreateLabelingJob request of one iteration, as the notebook builds it (validated against botocore)."""
    return bounding_box_request(
        config, inputs, job_name, initial_model_arn, {"experiment": config.name, "iteration": str(iteration)}
    )


# -- 5. the comparison report -------------------------------------------------------------------------------------


def report(
    s3, logs, sagemaker, config: ExperimentConfig, layout: S3Layout, dag_id: str, run_id: str, jobs: list[dict]
) -> dict:
    """Read every job's outputs, judge the labels against the Open Images boxes, render and upload the report.

    The reference boxes are the ones the selection step read from the annotation CSV for exactly these images.
    In demo mode (`GT_LOCAL_REPORTS_DIR` set) the files are also written to `<dir>/<dag_id>/<run_id>/`.
    """
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
    published = publish_report(s3, layout, dag_id, run_id, functools.partial(render_report, result))
    log.info("report:\n%s", summary_text(result))
    return {
        **published,
        "jobs": [
            {k: job.get(k) for k in ("key", "job_name", "machine_labeled_pct", "cost_usd")} for job in result["jobs"]
        ],
    }
