"""What a job's description says, as JSON-safe summaries and progress lines: labeling, training, transform jobs.

Operators return these summaries (XCom), triggers put them in their events, waits log the progress lines.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any


def json_safe(value: Any) -> Any:
    """Describe responses hold datetimes; XCom and trigger events must be plain JSON."""
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


# The part of DescribeLabelingJob that downstream code and trigger events need; the full description also carries
# the request (HumanTaskConfig, ...), which is large and already known to the DAG.
DESCRIPTION_KEYS = (
    "LabelingJobName",
    "LabelingJobArn",
    "LabelingJobStatus",
    "LabelCounters",
    "FailureReason",
    "LabelingJobOutput",
    "LabelAttributeName",
    "InputConfig",
    "OutputConfig",
    "CreationTime",
    "LastModifiedTime",
    "JobReferenceCode",
)


def description_subset(description: Mapping[str, Any]) -> dict[str, Any]:
    return json_safe({k: description[k] for k in DESCRIPTION_KEYS if k in description})


def label_counters(description: Mapping[str, Any]) -> dict[str, int]:
    counters = description.get("LabelCounters") or {}
    human = int(counters.get("HumanLabeled", 0))
    machine = int(counters.get("MachineLabeled", 0))
    return {
        "TotalLabeled": int(counters.get("TotalLabeled", human + machine)),
        "HumanLabeled": human,
        "MachineLabeled": machine,
        "FailedNonRetryableError": int(counters.get("FailedNonRetryableError", 0)),
        "Unlabeled": int(counters.get("Unlabeled", 0)),
    }


def percent_done(description: Mapping[str, Any]) -> float:
    """Share of objects that are labeled or failed for good; 0.0 before the job has counted its input."""
    c = label_counters(description)
    finished = c["TotalLabeled"] + c["FailedNonRetryableError"]
    total = finished + c["Unlabeled"]
    return round(100.0 * finished / total, 1) if total else 0.0


def progress_message(description: Mapping[str, Any]) -> str:
    c = label_counters(description)
    return (
        f"Labeling job {description.get('LabelingJobName')} is {description.get('LabelingJobStatus')}: "
        f"{c['HumanLabeled']} human-labeled, {c['MachineLabeled']} machine-labeled, "
        f"{c['FailedNonRetryableError']} failed, {c['Unlabeled']} unlabeled ({percent_done(description):.1f}% done)"
    )


def _output(description: Mapping[str, Any], key: str) -> str | None:
    # Accepts both a raw description (nested LabelingJobOutput) and a summary (flat keys).
    output = description.get("LabelingJobOutput") or {}
    return output.get(key) or description.get(key)


def summarize_labeling_job(description: Mapping[str, Any]) -> dict[str, Any]:
    """
    The JSON-safe dict operators return (XCom) for a job.

    Service-named keys: ``LabelingJobName``, ``LabelingJobArn``, ``LabelingJobStatus``, ``LabelCounters`` (all five
    counters, zeros filled in), ``FailureReason``, ``OutputDatasetS3Uri`` (the output manifest),
    ``FinalActiveLearningModelArn``, ``InputManifestS3Uri``, ``S3OutputPath``, ``LabelAttributeName``,
    ``CreationTime``/``LastModifiedTime`` (ISO 8601).
    Domain-named duplicates: ``job_name``, ``job_arn``, ``status``, ``output_manifest_s3_uri``, ``final_model_arn``,
    ``human_labeled``, ``machine_labeled``, ``failed``, ``unlabeled``, ``total_labeled``, ``percent_done``.
    Idempotent: summarizing a summary gives the same dict.
    """
    counters = label_counters(description)
    input_config = description.get("InputConfig") or {}
    manifest = (input_config.get("DataSource") or {}).get("S3DataSource", {}).get("ManifestS3Uri") or description.get(
        "InputManifestS3Uri"
    )
    output_path = (description.get("OutputConfig") or {}).get("S3OutputPath") or description.get("S3OutputPath")
    summary = {
        "LabelingJobName": description.get("LabelingJobName"),
        "LabelingJobArn": description.get("LabelingJobArn"),
        "LabelingJobStatus": description.get("LabelingJobStatus"),
        "LabelCounters": counters,
        "FailureReason": description.get("FailureReason"),
        "OutputDatasetS3Uri": _output(description, "OutputDatasetS3Uri"),
        "FinalActiveLearningModelArn": _output(description, "FinalActiveLearningModelArn"),
        "InputManifestS3Uri": manifest,
        "S3OutputPath": output_path,
        "LabelAttributeName": description.get("LabelAttributeName"),
        "CreationTime": description.get("CreationTime"),
        "LastModifiedTime": description.get("LastModifiedTime"),
    }
    summary.update(
        {
            "job_name": summary["LabelingJobName"],
            "job_arn": summary["LabelingJobArn"],
            "status": summary["LabelingJobStatus"],
            "output_manifest_s3_uri": summary["OutputDatasetS3Uri"],
            "final_model_arn": summary["FinalActiveLearningModelArn"],
            "human_labeled": counters["HumanLabeled"],
            "machine_labeled": counters["MachineLabeled"],
            "failed": counters["FailedNonRetryableError"],
            "unlabeled": counters["Unlabeled"],
            "total_labeled": counters["TotalLabeled"],
            "percent_done": percent_done(description),
        }
    )
    return json_safe(summary)


def summarize_training_job(description: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON-safe dict the training operator returns: service-named keys plus `job_name`, `job_arn`, `status`,
    `model_data_url`, `training_image`, `metrics` ({name: value}) and `billable_seconds`."""
    metrics = {m["MetricName"]: m["Value"] for m in description.get("FinalMetricDataList") or [] if "MetricName" in m}
    summary = {
        key: description.get(key)
        for key in (
            "TrainingJobName",
            "TrainingJobArn",
            "TrainingJobStatus",
            "SecondaryStatus",
            "FailureReason",
            "ModelArtifacts",
            "AlgorithmSpecification",
            "HyperParameters",
            "FinalMetricDataList",
            "BillableTimeInSeconds",
            "TrainingStartTime",
            "TrainingEndTime",
            "RoleArn",
        )
        if key in description
    }
    summary.update(
        {
            "job_name": description.get("TrainingJobName"),
            "job_arn": description.get("TrainingJobArn"),
            "status": description.get("TrainingJobStatus"),
            "model_data_url": (description.get("ModelArtifacts") or {}).get("S3ModelArtifacts"),
            "training_image": (description.get("AlgorithmSpecification") or {}).get("TrainingImage"),
            "metrics": metrics,
            "billable_seconds": description.get("BillableTimeInSeconds"),
        }
    )
    return json_safe(summary)


def summarize_transform_job(description: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON-safe dict the transform operator returns: service-named keys plus `job_name`, `job_arn`, `status`,
    `model_name` and `output_uri` (where the `.out` files are)."""
    summary = {
        key: description.get(key)
        for key in (
            "TransformJobName",
            "TransformJobArn",
            "TransformJobStatus",
            "FailureReason",
            "ModelName",
            "TransformInput",
            "TransformOutput",
            "TransformResources",
            "TransformStartTime",
            "TransformEndTime",
        )
        if key in description
    }
    summary.update(
        {
            "job_name": description.get("TransformJobName"),
            "job_arn": description.get("TransformJobArn"),
            "status": description.get("TransformJobStatus"),
            "model_name": description.get("ModelName"),
            "output_uri": (description.get("TransformOutput") or {}).get("S3OutputPath"),
        }
    )
    return json_safe(summary)


def tags_to_dict(tags: Any) -> dict[str, str]:
    if isinstance(tags, Mapping):
        return {str(k): str(v) for k, v in tags.items()}
    return {str(t["Key"]): str(t.get("Value", "")) for t in tags or []}
