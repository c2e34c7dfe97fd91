"""The active-learning family's stages: S3 I/O and requests around the pure steps of `groundtruth.active_learning`.

No Airflow imports; `groundtruth.active_learning_tasks` runs each stage as a task. A run keeps everything under its
own prefix, `<output_prefix><run key>/` (`run_layout`):

    intermediate/input.manifest        the input with ids (the seed's copy)      intermediate/validation.json
    intermediate/label_categories.json, intermediate/instructions.template     (the human jobs' worker UI)
    bootstrap/human/input.manifest, bootstrap/human/output/, bootstrap/merged.manifest
    rounds/<k>/train/, rounds/<k>/validation/, rounds/<k>/model/          (training channels and artifacts)
    rounds/<k>/transform/input/, rounds/<k>/transform/output/             (batch transform)
    rounds/<k>/auto.manifest, rounds/<k>/human/..., rounds/<k>/merged.manifest
    final_output.manifest, report/

The loop's *state* travels between tasks as XCom, a JSON-safe dict (`LoopState` documents its keys): the current
manifest's URI, its counts, the money spent so far and the history the report reads. Every stage writes its
output at a fixed key and derives it only from its inputs, so re-running a stage writes the same bytes.
"""

from __future__ import annotations

import copy
import functools
import gzip
import hashlib
import io
import logging
import tarfile
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypedDict

from groundtruth import active_learning as steps
from groundtruth.config import ActiveLearningConfig, BlazingTextModel, ScriptModel
from groundtruth.manifests import ManifestError, json_lines, label_categories, text_classification_template
from groundtruth.outputs import split_s3_uri
from groundtruth.pricing import (
    job_cost_usd,
    labeling_cost,
    pricing_from_request,
    rounded_usd,
    run_budget_problem,
    training_worst_case,
    transform_worst_case,
    worst_case_cost,
)
from groundtruth.requests import blazingtext_image, labeling_job_name
from groundtruth.stages import (
    S3Layout,
    ensure_bucket,
    exists,
    publish_report,
    put_json,
    read_json,
    run_key,
    text_classification_request,
)

log = logging.getLogger(__name__)

HISTOGRAM_BINS = 20
SOURCE_BUNDLE = "sourcedir.tar.gz"


class LoopState(TypedDict):
    """What one stage hands the next (XCom). `counts` are `active_learning.counts` of `manifest`."""

    manifest: str  # s3:// URI of the current merged manifest
    categories: list[str]
    labels_uri: str  # the label-category file the human jobs read
    template_uri: str
    source_uri: str | None  # a script model's sourcedir.tar.gz
    objects: int
    counts: dict[str, int]
    initial: dict[str, int]
    spent_usd: float
    bootstrap: dict[str, Any] | None
    rounds: list[dict[str, Any]]
    validation_uri: str | None
    model_arn: str | None


# -- where -----------------------------------------------------------------------------------------------------------
def run_layout(config: ActiveLearningConfig, run_id: str) -> S3Layout:
    bucket, key = split_s3_uri(config.output_prefix)
    return S3Layout(bucket, f"{key.rstrip('/')}/{run_key(run_id)}" if key.strip("/") else run_key(run_id))


def _records(s3, uri: str) -> list[dict]:
    """A manifest this run wrote: ids are already in place, so they are read back, never renumbered."""
    return [record for _, record in json_lines(steps.read_bytes(s3, uri).split(b"\n"), uri)]


# -- prepare ---------------------------------------------------------------------------------------------------------
def prepare(s3, config: ActiveLearningConfig, layout: S3Layout, ds: str | None, include_dir: Path) -> LoopState:
    """Copy the input manifest into the run with sequential ids, read the label categories, write the worker UI
    and (for a script model) upload its source bundle; a bad line fails here, naming the URI and line."""
    source, categories_uri = config.dated("input_manifest", ds), config.dated("label_categories", ds)
    ensure_bucket(s3, config)  # the model's source bundles live there
    records = steps.parse_input_manifest(steps.read_bytes(s3, source), source, config.label_attribute)
    if not records:
        raise ManifestError(f"{source} has no records")
    categories = steps.parse_label_categories(steps.read_bytes(s3, categories_uri), categories_uri)
    if len(categories) < 2:
        raise ManifestError(f"{categories_uri}: text classification needs at least 2 labels")
    for record in records:
        label = record.get(config.label_attribute)
        if label is not None and label >= len(categories):
            raise ManifestError(
                f"{source} line {record['id'] + 1}: {config.label_attribute}={label} is not an index into the "
                f"{len(categories)} labels of {categories_uri}"
            )
    manifest = layout.uri("intermediate", "input.manifest")
    steps.write_bytes(s3, manifest, steps.serialize(records))
    labels_uri = layout.uri("intermediate", "label_categories.json")
    steps.write_bytes(s3, labels_uri, label_categories(categories).encode(), "application/json")
    template_uri = layout.uri("intermediate", "instructions.template")
    template = text_classification_template(categories, "Choose the one category that fits the text best.")
    steps.write_bytes(s3, template_uri, template.encode(), "text/html")
    tally = steps.counts(records, config.label_attribute)
    log.info("Input %s: %s", source, tally)
    return LoopState(
        manifest=manifest,
        categories=categories,
        labels_uri=labels_uri,
        template_uri=template_uri,
        source_uri=upload_source_bundle(s3, config, include_dir) if isinstance(config.model, ScriptModel) else None,
        objects=len(records),
        counts=tally,
        initial=dict(tally),
        spent_usd=0.0,
        bootstrap=None,
        rounds=[],
        validation_uri=None,
        model_arn=None,
    )


def source_bundle(source_dir: Path) -> bytes:
    """`sourcedir.tar.gz` of a directory's files (top level, sorted, zeroed times and owners): the same files
    always give the same bytes, so its content hash names it."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        for path in sorted(p for p in source_dir.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            info = tarfile.TarInfo(path.relative_to(source_dir).as_posix())
            data = path.read_bytes()
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def upload_source_bundle(s3, config: ActiveLearningConfig, include_dir: Path) -> str:
    """Upload the model's source directory once, named by its content hash; returns its s3:// URI."""
    model = config.model
    assert isinstance(model, ScriptModel)
    source_dir = include_dir / model.source_dir
    if not source_dir.is_dir():
        raise ValueError(f"model.source_dir {source_dir} does not exist")
    bundle = source_bundle(source_dir)
    digest = hashlib.sha256(bundle).hexdigest()[:16]
    key = f"{config.prefix}/code/{Path(model.source_dir).name}-{digest}/{SOURCE_BUNDLE}"
    if not exists(s3, config.bucket, key):
        s3.put_object(Bucket=config.bucket, Key=key, Body=bundle, ContentType="application/gzip")
        log.info("Uploaded %s (%d bytes)", key, len(bundle))
    return f"s3://{config.bucket}/{key}"


# -- human batches (bootstrap and every round) -----------------------------------------------------------------------
def human_batch(
    s3,
    config: ActiveLearningConfig,
    layout: S3Layout,
    state: LoopState,
    ids: Sequence[int],
    records: Sequence[Mapping],
    where: str,
    job_name: str,
    committed: Mapping[str, float] | None = None,
) -> dict[str, Any] | None:
    """The labeling job for `ids` (its input manifest written under `<where>/human/`), priced against the budget;
    None when there is nothing to label. `committed` are costs already incurred but not yet in `spent_usd`."""
    if not ids:
        return None
    manifest = layout.uri(where, "human", "input.manifest")
    steps.write_bytes(s3, manifest, steps.human_batch_manifest(records, ids, config.label_attribute))
    request = text_classification_request(
        config,
        manifest,
        state["labels_uri"],
        state["template_uri"],
        layout.uri(where, "human", "output") + "/",
        job_name,
        tags={},
    )
    worst = worst_case_cost(len(ids), request, config.service_fee_usd)["worst_case_usd"]
    spent = state["spent_usd"] + sum((committed or {}).values())
    problem = run_budget_problem(spent, {f"labeling {len(ids)} objects": worst}, config.budget_usd, config.name)
    if problem:
        raise ValueError(problem)
    return {"ids": sorted(ids), "manifest": manifest, "request": request}


def bootstrap_batch(
    s3, config: ActiveLearningConfig, layout: S3Layout, state: LoopState, dag_id: str, run_id: str, task_id: str
) -> dict[str, Any] | None:
    """The first unlabeled records (file order) that bring human labels to `bootstrap_share`; None when enough
    are labeled already."""
    records = _records(s3, state["manifest"])
    ids = steps.bootstrap_ids(records, config.label_attribute, config.bootstrap_share)
    name = labeling_job_name(dag_id, run_id, task_id, "bootstrap")
    batch = human_batch(s3, config, layout, state, ids, records, "bootstrap", name)
    if batch is None:
        log.info(
            "%d of %d objects are human-labeled already: no bootstrap job",
            state["counts"]["human_labeled"],
            state["objects"],
        )
    return batch


def merge_human_labels(
    s3,
    config: ActiveLearningConfig,
    layout: S3Layout,
    state: LoopState,
    batch: Mapping[str, Any],
    job: Mapping[str, Any],
    where: str,
) -> LoopState:
    """Merge a finished labeling job's output into the manifest by id: exactly the batch's ids, each once."""
    attr = config.label_attribute
    output = job.get("OutputDatasetS3Uri")
    if not output:
        raise ManifestError(f"labeling job {job.get('LabelingJobName')} reports no output manifest")
    labels = steps.labels_from_output_manifest(steps.read_bytes(s3, output), attr, output, batch["ids"])
    merged = steps.merge(_records(s3, state["manifest"]), labels, attr)
    manifest = layout.uri(where, "merged.manifest")
    steps.write_bytes(s3, manifest, steps.serialize(merged))
    counters = job.get("LabelCounters") or {}
    cost = labeling_cost(
        int(counters.get("HumanLabeled", len(labels))),
        int(counters.get("MachineLabeled", 0)),
        pricing_from_request(batch["request"], config.service_fee_usd),
    )["total"]
    new = _advance(state, manifest, merged, attr, cost)
    record = {"job_name": job.get("LabelingJobName"), "human_labeled": len(labels), "cost_usd": cost}
    if where == "bootstrap":
        new["bootstrap"] = record
    else:
        current = new["rounds"][-1]
        current.update({"labeling_job": record["job_name"], "human_labeled": len(labels)})
        current["cost_usd"]["labeling"] = cost
        current["after"] = dict(new["counts"])
    return new


def _advance(state: LoopState, manifest: str, records: Sequence[Mapping], attr: str, cost: float) -> LoopState:
    new = copy.deepcopy(state)
    new["manifest"] = manifest
    new["counts"] = steps.counts(records, attr)
    new["spent_usd"] = rounded_usd(state["spent_usd"] + cost)
    return new


# -- one round -------------------------------------------------------------------------------------------------------
def plan_round(
    s3,
    config: ActiveLearningConfig,
    layout: S3Layout,
    state: LoopState,
    round_number: int,
    dag_id: str,
    run_id: str,
    task_id: str,
) -> dict[str, Any] | None:
    """The round's training channels, transform input and training request, priced against the budget; None
    when nothing is left to label (the loop is done).

    Round 1 fixes the validation set (the first `validation_share` of human labels in file order) for every
    later round, as the seed does."""
    attr = config.label_attribute
    if state["counts"]["unlabeled"] == 0:
        return None
    records = _records(s3, state["manifest"])
    where = f"rounds/{round_number}"
    validation_key = layout.key("intermediate", "validation.json")
    if round_number == 1 or state["validation_uri"] is None:
        validation = steps.validation_ids(records, attr, config.validation_share)
        put_json(s3, layout.bucket, validation_key, {"ids": validation})
    else:
        fixed = read_json(s3, layout.bucket, validation_key)
        if fixed is None:
            raise ManifestError(f"{state['validation_uri']} is missing: round 1 fixes the validation set")
        validation = fixed["ids"]
    training = steps.training_ids(records, attr, validation)
    if not training or not validation:
        raise ValueError(
            f"round {round_number}: {len(training)} training and {len(validation)} validation labels; the model "
            "needs both (raise bootstrap_share or validation_share)"
        )
    steps.write_bytes(s3, layout.uri(where, "train", "train.jsonl"), steps.augmented_manifest(records, attr, training))
    steps.write_bytes(
        s3, layout.uri(where, "validation", "validation.jsonl"), steps.augmented_manifest(records, attr, validation)
    )
    scored = steps.unlabeled_ids(records, attr)
    k = len(state["categories"])
    steps.write_bytes(
        s3, layout.uri(where, "transform", "input", "input.jsonl"), steps.transform_input(records, attr, k)
    )
    name = labeling_job_name(dag_id, run_id, task_id, round_number)
    request = training_request(config, layout, where, name, state["source_uri"])
    estimates = {
        f"training job {name}": training_worst_case(request, config.region)["worst_case_usd"],
        "transform": transform_worst_case(
            {"TransformResources": {"InstanceType": config.model.transform_instance_type, "InstanceCount": 1}},
            config.region,
            config.transform_max_seconds,
        )["worst_case_usd"],
    }
    problem = run_budget_problem(
        state["spent_usd"], estimates, config.budget_usd, f"{config.name} round {round_number}"
    )
    if problem:
        raise ValueError(problem)
    log.info(
        "Round %d: %d training and %d validation labels, %d objects to score",
        round_number,
        len(training),
        len(validation),
        len(scored),
    )
    new = copy.deepcopy(state)
    new["validation_uri"] = layout.uri("intermediate", "validation.json")
    return {"state": new, "training": request, "scored": len(scored)}


def training_request(
    config: ActiveLearningConfig, layout: S3Layout, where: str, name: str, source_uri: str | None
) -> dict[str, Any]:
    """CreateTrainingJob: BlazingText on augmented-manifest channels (Pipe, RecordIO, as the seed), or a script
    model in File mode reading the same lines (`{"source", "<attr>"}`) from S3Prefix channels."""
    model = config.model
    attr = config.label_attribute
    common = {
        "TrainingJobName": name,
        "RoleArn": config.role_arn,
        "OutputDataConfig": {"S3OutputPath": layout.uri(where, "model") + "/"},
        "ResourceConfig": {"InstanceType": model.instance_type, "InstanceCount": 1, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": model.max_runtime_seconds},
    }
    if isinstance(model, BlazingTextModel):
        channels = [
            {
                "ChannelName": channel,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "AugmentedManifestFile",
                        "S3Uri": layout.uri(where, channel, f"{channel}.jsonl"),
                        "S3DataDistributionType": "FullyReplicated",
                        "AttributeNames": ["source", attr],
                    }
                },
                "ContentType": "application/x-recordio",
                "RecordWrapperType": "RecordIO",
                "CompressionType": "None",
            }
            for channel in ("train", "validation")
        ]
        return {
            **common,
            "AlgorithmSpecification": {
                "TrainingImage": model.image or blazingtext_image(config.region),
                "TrainingInputMode": "Pipe",
            },
            "HyperParameters": dict(model.hyperparameters),
            "InputDataConfig": channels,
        }
    import json

    hyperparameters = {
        key: json.dumps(value) for key, value in {**model.hyperparameters, "label_attribute": attr}.items()
    }
    hyperparameters["sagemaker_program"] = json.dumps(model.entry_point)
    hyperparameters["sagemaker_submit_directory"] = json.dumps(source_uri)
    channels = [
        {
            "ChannelName": channel,
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": layout.uri(where, channel) + "/",
                    "S3DataDistributionType": "FullyReplicated",
                }
            },
            "ContentType": "application/jsonlines",
        }
        for channel in ("train", "validation")
    ]
    return {
        **common,
        "AlgorithmSpecification": {
            "TrainingImage": model.image,
            "TrainingInputMode": "File",
            # the service reads metrics from the log with these; BlazingText reports its own
            "MetricDefinitions": [{"Name": "validation:accuracy", "Regex": model.validation_accuracy_regex}],
        },
        "HyperParameters": hyperparameters,
        "InputDataConfig": channels,
    }


def model_and_transform_requests(
    config: ActiveLearningConfig,
    layout: S3Layout,
    state: LoopState,
    round_number: int,
    trained: Mapping[str, Any],
    transform_name: str,
) -> dict[str, dict[str, Any]]:
    """CreateModel (named after the training job, as the seed does) and CreateTransformJob for the round."""
    model = config.model
    where = f"rounds/{round_number}"
    model_name = trained["TrainingJobName"]
    container: dict[str, Any] = {"ModelDataUrl": trained["model_data_url"]}
    if isinstance(model, BlazingTextModel):
        container["Image"] = trained.get("training_image") or model.image or blazingtext_image(config.region)
        strategy = "MultiRecord"
    else:
        container["Image"] = model.inference_image or model.image
        container["Environment"] = {
            "SAGEMAKER_PROGRAM": model.inference_entry_point,
            "SAGEMAKER_SUBMIT_DIRECTORY": state["source_uri"],
        }
        strategy = "SingleRecord"
    transform = {
        "TransformJobName": transform_name,
        "ModelName": model_name,
        "BatchStrategy": strategy,
        "TransformInput": {
            "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": layout.uri(where, "transform", "input") + "/"}
            },
            "ContentType": "application/jsonlines",
            "SplitType": "Line",
        },
        "TransformOutput": {
            "S3OutputPath": layout.uri(where, "transform", "output") + "/",
            "Accept": "application/jsonlines",
            "AssembleWith": "Line",
        },
        "TransformResources": {"InstanceType": model.transform_instance_type, "InstanceCount": 1},
        "DataProcessing": {"InputFilter": "$", "JoinSource": "Input", "OutputFilter": "$['id','SageMakerOutput']"},
    }
    return {
        "model": {"ModelName": model_name, "ExecutionRoleArn": config.role_arn, "PrimaryContainer": container},
        "transform": transform,
    }


def _seconds_between(start: Any, end: Any) -> float:
    if not start or not end:
        return 0.0
    return max(0.0, (datetime.fromisoformat(str(end)) - datetime.fromisoformat(str(start))).total_seconds())


def margin_histogram(margins: Mapping[int, float], bins: int = HISTOGRAM_BINS) -> dict[str, list]:
    """Counts of margins in `bins` equal bins over [0, 1] (1.0 falls in the last)."""
    counts = [0] * bins
    for margin in margins.values():
        counts[min(bins - 1, max(0, int(margin * bins)))] += 1
    return {"edges": [round(i / bins, 6) for i in range(bins + 1)], "counts": counts}


def auto_label(
    s3,
    config: ActiveLearningConfig,
    layout: S3Layout,
    plan: Mapping[str, Any],
    round_number: int,
    trained: Mapping[str, Any],
    model: Mapping[str, Any],
    transformed: Mapping[str, Any],
    dag_id: str,
    run_id: str,
    labeling_task_id: str,
) -> dict[str, Any]:
    """Auto-label every scored record whose top-1 minus top-2 probability is above the margin, merge those labels,
    and choose the next human batch (a seeded sample of what is still unlabeled)."""
    attr = config.label_attribute
    state: LoopState = plan["state"]
    where = f"rounds/{round_number}"
    records = _records(s3, state["manifest"])
    expected = steps.unlabeled_ids(records, attr)
    output_prefix = transformed["output_uri"]
    lines = _transform_output_lines(s3, output_prefix)
    auto = steps.auto_labels(
        lines,
        state["categories"],
        attr,
        transformed["TransformJobName"],
        now=datetime.fromisoformat(str(transformed.get("TransformEndTime") or transformed.get("TransformStartTime"))),
        threshold=config.auto_label_margin,
        expected_ids=expected,
        source=f"{output_prefix}input.jsonl.out",
    )
    merged = steps.merge(records, auto.labels, attr)
    manifest = layout.uri(where, "auto.manifest")
    steps.write_bytes(s3, manifest, steps.serialize(merged))
    region = config.region
    costs = {
        "training": job_cost_usd(
            config.model.instance_type, 1, float(trained.get("billable_seconds") or 0), region, "training"
        ),
        "transform": job_cost_usd(
            config.model.transform_instance_type,
            1,
            _seconds_between(transformed.get("TransformStartTime"), transformed.get("TransformEndTime")),
            region,
            "transform",
        ),
        "labeling": 0.0,
    }
    new = _advance(state, manifest, merged, attr, costs["training"] + costs["transform"])
    new["model_arn"] = model.get("ModelArn")
    new["rounds"].append(
        {
            "round": round_number,
            "training_job": trained.get("TrainingJobName"),
            "transform_job": transformed.get("TransformJobName"),
            "model_arn": model.get("ModelArn"),
            "validation_accuracy": (trained.get("metrics") or {}).get("validation:accuracy"),
            "threshold": config.auto_label_margin,
            "scored": len(auto.margins),
            "auto_labeled": len(auto.labels),
            "human_labeled": 0,
            "labeling_job": None,
            "margin_histogram": margin_histogram(auto.margins),
            "cost_usd": costs,
            "after": dict(new["counts"]),
        }
    )
    log.info(
        "Round %d: %d of %d scored objects auto-labeled (margin > %s)",
        round_number,
        len(auto.labels),
        len(auto.margins),
        config.auto_label_margin,
    )
    ids = steps.next_human_batch(merged, attr, config.seed, round_number, config.human_batch_share)
    name = labeling_job_name(dag_id, run_id, labeling_task_id, round_number)
    batch = human_batch(s3, config, layout, new, ids, merged, where, name)
    return {"state": new, "batch": batch, "labeling": batch["request"] if batch else None}


def _transform_output_lines(s3, output_prefix: str) -> list[bytes]:
    """Every line of every `.out` object under the transform's output path, in key order."""
    bucket, prefix = split_s3_uri(output_prefix)
    lines: list[bytes] = []
    paginator = s3.get_paginator("list_objects_v2")
    keys = sorted(
        obj["Key"]
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
        for obj in page.get("Contents", [])
        if obj["Key"].endswith(".out")
    )
    if not keys:
        raise ManifestError(f"{output_prefix}: the transform job wrote no .out file")
    for key in keys:
        lines.extend(s3.get_object(Bucket=bucket, Key=key)["Body"].read().split(b"\n"))
    return lines


# -- the end ---------------------------------------------------------------------------------------------------------
def export(s3, config: ActiveLearningConfig, layout: S3Layout, state: LoopState) -> dict[str, Any]:
    """`final_output.manifest` when every record is labeled; otherwise a ManifestError saying how many are not
    (the loop used its `max_rounds`): never a partial export."""
    records = _records(s3, state["manifest"])
    try:
        body = steps.final_manifest(records, config.label_attribute)
    except ManifestError as error:
        raise ManifestError(
            f"{config.name}: {len(state['rounds'])} of max_rounds={config.max_rounds} rounds ran and {error}; "
            "no final manifest was written"
        ) from None
    uri = layout.uri("final_output.manifest")
    steps.write_bytes(s3, uri, body)
    tally = steps.counts(records, config.label_attribute)
    log.info("Exported %s: %s", uri, tally)
    return {"FinalManifestS3Uri": uri, "TrainedModelArn": state["model_arn"], "counts": tally}


def history(state: LoopState, config: ActiveLearningConfig, dag_id: str, run_id: str, final: str | None) -> dict:
    """The report's input (`groundtruth.active_learning_report.build_report`)."""
    return {
        "name": config.name,
        "dag_id": dag_id,
        "run_id": run_id,
        "label_attribute": config.label_attribute,
        "model_kind": config.model.kind,
        "objects": state["objects"],
        "initial": {k: state["initial"][k] for k in ("human_labeled", "auto_labeled", "unlabeled")},
        "bootstrap": state["bootstrap"],
        "rounds": state["rounds"],
        "final_manifest": final,
        "model_arn": state["model_arn"],
        "truth": None,
    }


def label_pairs(s3, state: LoopState, attr: str, human_jobs: set[str]) -> dict[str, list[tuple[str, str]]]:
    """(text, class name) of every auto-label, and of every human label one of `human_jobs` made (metadata
    `job-name`), split into `auto` and `human` — what the emulator's truth check scores."""
    pairs: dict[str, list[tuple[str, str]]] = {"auto": [], "human": []}
    for record in _records(s3, state["manifest"]):
        kind = steps.label_state(record, attr)
        if kind == steps.HUMAN and record[f"{attr}-metadata"].get("job-name") not in human_jobs:
            continue
        if kind is not None:
            pairs[kind].append((record["source"], state["categories"][record[attr]]))
    return pairs


def report(
    s3,
    config: ActiveLearningConfig,
    layout: S3Layout,
    state: LoopState,
    dag_id: str,
    run_id: str,
    endpoint_url: str | None,
) -> dict[str, Any]:
    """Render the run's report from its latest state, upload it under `report/` and, in demo mode
    (`GT_LOCAL_REPORTS_DIR`), write it to `<dir>/<dag_id>/<run_id>/` too.

    With an explicit endpoint (the emulator), the labels are scored against the emulator's truth through its admin
    route; on AWS there is no truth and the accuracy rows say so. The human labels scored are the ones this run's
    jobs made (labels the input already carried are not the workforce's)."""
    from groundtruth.active_learning_report import build_report, render_report, summary_text, truth_check

    final = layout.uri("final_output.manifest") if state["counts"]["unlabeled"] == 0 else None
    doc = history(state, config, dag_id, run_id, final)
    jobs = {
        f"labeling-job/{j}"
        for j in [(state["bootstrap"] or {}).get("job_name")] + [r.get("labeling_job") for r in state["rounds"]]
        if j
    }
    pairs = label_pairs(s3, state, config.label_attribute, jobs)
    if endpoint_url:
        auto, human = truth_check(endpoint_url, pairs["auto"]), truth_check(endpoint_url, pairs["human"])
        if auto is not None and human is not None:
            doc["truth"] = {"auto": auto, "human": human}
    result = build_report(doc)
    published = publish_report(s3, layout, dag_id, run_id, functools.partial(render_report, result))
    log.info("report:\n%s", summary_text(result))
    return {**published, "totals": result["totals"]}
