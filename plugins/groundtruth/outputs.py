"""Reading what a labeling job wrote: per-iteration counts, training curves and the final labels.

The rules are the seed notebook's "Post-Process Job" cells, so a finished job on AWS and one in the local emulator are
read the same way:

- human labels: `annotations/consolidated-annotation/consolidation-response/iteration-<N>/<YYYY-MM-DD_HH:MM:SS>.json`,
  each a JSON array of `{"datasetObjectId", "consolidatedAnnotation": {"content": {<attr>, <attr>-metadata}}}`;
  every datasetObjectId is counted once, in the earliest iteration it appears in;
- machine labels: `activelearning/**/auto_annotator_output.txt`, one `<token> <json>` line per object, the iteration
  being the directory two levels above the file;
- training curves: every `training/**/<training-job-name>/output/model.tar.gz` names a training job whose CloudWatch
  Logs (`/aws/sagemaker/TrainingJobs`) hold `num_training_samples` and one `validation mAP` per epoch;
- final labels: the output manifest (`LabelingJobOutput.OutputDatasetS3Uri`), streamed line by line.

Pure functions do the parsing and counting; the `read_*` shells only list, fetch and hand over. No Airflow imports:
the caller passes boto3 clients (S3 and CloudWatch Logs) and the DescribeLabelingJob response.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

from botocore.exceptions import ClientError

from groundtruth.aws_errors import is_missing_s3_object, is_not_found_error
from groundtruth.manifests import read_manifest

log = logging.getLogger(__name__)

CONSOLIDATION_PREFIX = "annotations/consolidated-annotation/consolidation-response/"
ACTIVE_LEARNING_PREFIX = "activelearning/"
AUTO_ANNOTATION_FILE = "auto_annotator_output.txt"
TRAINING_PREFIX = "training/"
MODEL_ARTIFACT_FILE = "model.tar.gz"
TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"

_ITERATION_DIR = re.compile(r"^iteration-(\d+)$")
_NUM_SAMPLES = re.compile(r"num_training_samples'\s*:\s*u?'(\d+)'")
_VALIDATION_MAP = re.compile(r"validation mAP <score>=\(([^)]*)\)")

Box = tuple[float, float, float, float]
"""A pixel box ``(left, top, width, height)``, as Ground Truth writes it."""


# -- what a job's outputs hold --------------------------------------------------------------------------------------
@dataclass
class RoundCounts:
    """Objects and boxes labeled in one iteration of the job, by humans and by the auto-labeling model.

    `*_finished_at` are the latest event of the iteration (UTC, ISO 8601 without zone, as the files carry them): the
    consolidation file's name for humans, the labels' `creation-date` for the machine.
    """

    iteration: int
    human_images: int = 0
    human_boxes: int = 0
    machine_images: int = 0
    machine_boxes: int = 0
    human_finished_at: str | None = None
    machine_finished_at: str | None = None


@dataclass
class TrainingCurve:
    """One auto-labeling training job: its sample count and validation mAP per epoch (None where the log said nan)."""

    training_job_name: str
    iteration: int | None = None
    num_training_samples: int | None = None
    validation_map: list[float | None] = field(default_factory=list)


@dataclass
class ImageLabel:
    """One output-manifest line: the final label of one image, or why it has none."""

    source_ref: str
    labeled: bool
    human_annotated: bool = False
    boxes: list[Box] = field(default_factory=list)
    confidences: list[float] = field(default_factory=list)
    width: int | None = None
    height: int | None = None
    failure_reason: str | None = None

    @property
    def image_id(self) -> str:
        """The file name without extension: the Open Images ImageID for images copied from the dataset."""
        return PurePosixPath(self.source_ref).stem

    @property
    def confidence(self) -> float | None:
        """The image's confidence: the mean of its boxes' (None without boxes, where there is nothing to trust)."""
        return sum(self.confidences) / len(self.confidences) if self.confidences else None


@dataclass
class JobOutputs:
    """Everything read from one job's outputs, JSON-safe through `to_dict()` (for XCom) and back via `from_dict()`."""

    job_name: str
    output_uri: str
    label_attribute: str
    manifest_uri: str | None = None
    rounds: list[RoundCounts] = field(default_factory=list)
    training: list[TrainingCurve] = field(default_factory=list)
    labels: list[ImageLabel] = field(default_factory=list)

    @property
    def human_images(self) -> int:
        return sum(r.human_images for r in self.rounds)

    @property
    def human_boxes(self) -> int:
        return sum(r.human_boxes for r in self.rounds)

    @property
    def machine_images(self) -> int:
        return sum(r.machine_images for r in self.rounds)

    @property
    def machine_boxes(self) -> int:
        return sum(r.machine_boxes for r in self.rounds)

    @property
    def iterations(self) -> int:
        """The highest iteration number seen: the notebook's (and the seed table's) "AL iterations"."""
        return max((r.iteration for r in self.rounds), default=0)

    def to_dict(self, include_labels: bool = True) -> dict[str, Any]:
        data = asdict(self)
        for label in data["labels"]:
            label["boxes"] = [list(box) for box in label["boxes"]]
        if not include_labels:
            del data["labels"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobOutputs:
        return cls(
            job_name=data["job_name"],
            output_uri=data["output_uri"],
            label_attribute=data["label_attribute"],
            manifest_uri=data.get("manifest_uri"),
            rounds=[RoundCounts(**r) for r in data.get("rounds", [])],
            training=[TrainingCurve(**t) for t in data.get("training", [])],
            labels=[
                ImageLabel(**{**label, "boxes": [tuple(b) for b in label.get("boxes", [])]})
                for label in data.get("labels", [])
            ],
        )


# -- pure parsing ---------------------------------------------------------------------------------------------------
def split_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/key/part` → (bucket, "key/part")."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


def job_output_uri(description: dict) -> str:
    """`<S3OutputPath>/<job-name>/`: where the job writes, whether or not S3OutputPath ends in a slash."""
    return description["OutputConfig"]["S3OutputPath"].rstrip("/") + "/" + description["LabelingJobName"] + "/"


def consolidation_iteration(key: str) -> int | None:
    """The N of the `iteration-N` directory holding a consolidation file.

    The notebook reads only the last character of the name, which breaks from iteration 10 on; this reads all digits.
    """
    parts = key.split("/")
    match = _ITERATION_DIR.match(parts[-2]) if len(parts) >= 2 else None
    return int(match.group(1)) if match else None


def consolidation_time(key: str) -> str | None:
    """The `%Y-%m-%d_%H:%M:%S.json` file name as ISO 8601, or None for a name in another shape."""
    try:
        return datetime.strptime(key.rsplit("/", 1)[-1], "%Y-%m-%d_%H:%M:%S.json").isoformat()
    except ValueError:
        return None


def auto_annotation_iteration(key: str) -> int | None:
    """The iteration of an `auto_annotator_output.txt`: the directory two levels above the file, as in the notebook."""
    parts = key.split("/")
    return int(parts[-3]) if len(parts) >= 3 and parts[-3].isdigit() else None


def box_count(content: dict, attribute: str) -> int:
    """Boxes in one object's `<attr>` label (0 when the label is missing, as for an object with a failure)."""
    label = content.get(attribute)
    return len(label.get("annotations") or []) if isinstance(label, dict) else 0


def parse_auto_annotation_line(line: str) -> dict | None:
    """`<token> <json>` → the JSON content (`<attr>`, `<attr>-metadata`); None for a blank line."""
    token, _, payload = line.strip().partition(" ")
    if not token:
        return None
    return json.loads(payload)


def _iso(creation_date: str | None) -> str | None:
    if not creation_date:
        return None
    try:
        return datetime.strptime(creation_date, "%Y-%m-%dT%H:%M:%S.%f").isoformat()
    except ValueError:
        return creation_date


def _later(a: str | None, b: str | None) -> str | None:
    return max(x for x in (a, b) if x) if (a or b) else None


def tally_rounds(
    human_files: Iterable[tuple[str, list[dict]]],
    machine_files: Iterable[tuple[str, Iterable[str]]],
    attribute: str,
) -> list[RoundCounts]:
    """Per-iteration human and machine counts from (key, content) pairs of the two kinds of output file.

    Human files must come in iteration order (see `by_iteration`) so that an object consolidated twice is counted once,
    in its first iteration. Files whose iteration cannot be read are skipped with a warning: a stray file should not
    sink the report, and the log says which one.
    """
    rounds: dict[int, RoundCounts] = {}
    seen: set[str] = set()
    for key, entries in human_files:
        iteration = consolidation_iteration(key)
        if iteration is None:
            log.warning("skipping %s: no iteration-N directory above it", key)
            continue
        counts = rounds.setdefault(iteration, RoundCounts(iteration))
        counts.human_finished_at = _later(counts.human_finished_at, consolidation_time(key))
        for entry in entries:
            object_id = str(entry["datasetObjectId"])
            if object_id in seen:
                continue
            seen.add(object_id)
            counts.human_images += 1
            counts.human_boxes += box_count(entry["consolidatedAnnotation"]["content"], attribute)
    for key, lines in machine_files:
        iteration = auto_annotation_iteration(key)
        if iteration is None:
            log.warning("skipping %s: the directory two levels above it is not an iteration number", key)
            continue
        counts = rounds.setdefault(iteration, RoundCounts(iteration))
        for line in lines:
            content = parse_auto_annotation_line(line)
            if content is None:
                continue
            counts.machine_images += 1
            counts.machine_boxes += box_count(content, attribute)
            created = _iso((content.get(f"{attribute}-metadata") or {}).get("creation-date"))
            counts.machine_finished_at = _later(counts.machine_finished_at, created)
    return [rounds[i] for i in sorted(rounds)]


def by_iteration(keys: Iterable[str]) -> list[str]:
    """Consolidation keys in (iteration, key) order; S3 lists `iteration-10` before `iteration-2`."""
    return sorted(keys, key=lambda k: (consolidation_iteration(k) or 0, k))


def training_job_of(key: str) -> tuple[int | None, str] | None:
    """(iteration, training job name) for a `training/<iteration>/.../<job>/output/model.tar.gz` key, else None."""
    parts = key.split("/")
    if parts[-1] != MODEL_ARTIFACT_FILE or len(parts) < 3:
        return None
    after = key.split(TRAINING_PREFIX, 1)[-1].split("/")
    iteration = int(after[0]) if after[0].isdigit() else None
    return iteration, parts[-3]


def _finite_or_none(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def parse_training_log(messages: Iterable[str]) -> tuple[int | None, list[float | None]]:
    """(num_training_samples from the "Final configuration" line, validation mAP of every epoch in order)."""
    samples: int | None = None
    maps: list[float | None] = []
    for message in messages:
        if "Final configuration" in message:
            match = _NUM_SAMPLES.search(message)
            if match:
                samples = int(match.group(1))
        for match in _VALIDATION_MAP.finditer(message):
            maps.append(_finite_or_none(match.group(1)))
    return samples, maps


def parse_manifest_line(line: dict, attribute: str) -> ImageLabel:
    """One output-manifest line as an ImageLabel: pixel boxes, their confidences, who labeled it."""
    metadata = line.get(f"{attribute}-metadata") or {}
    label = line.get(attribute)
    source_ref = str(line.get("source-ref", ""))
    if not isinstance(label, dict):
        return ImageLabel(source_ref=source_ref, labeled=False, failure_reason=metadata.get("failure-reason"))
    annotations = label.get("annotations") or []
    objects = metadata.get("objects") or []
    size = (label.get("image_size") or [{}])[0]
    return ImageLabel(
        source_ref=source_ref,
        labeled=True,
        human_annotated=metadata.get("human-annotated") == "yes",
        boxes=[(a["left"], a["top"], a["width"], a["height"]) for a in annotations],
        # A box without a confidence (older outputs) counts as certain: it is the label as delivered.
        confidences=[
            float((objects[i] if i < len(objects) else {}).get("confidence", 1.0)) for i in range(len(annotations))
        ],
        width=size.get("width"),
        height=size.get("height"),
    )


# -- I/O shells -----------------------------------------------------------------------------------------------------
def iter_keys(s3, bucket: str, prefix: str) -> Iterator[str]:
    """Every key under a prefix, across pages."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            yield obj["Key"]


def _get_body(s3, bucket: str, key: str):
    return s3.get_object(Bucket=bucket, Key=key)["Body"]


def _decoded_lines(body) -> Iterator[str]:
    for raw in body.iter_lines():
        yield raw.decode("utf-8")


def read_rounds(s3, output_uri: str, attribute: str) -> list[RoundCounts]:
    """Per-iteration counts from the consolidation responses and the auto-annotator outputs under a job's output."""
    bucket, base = split_s3_uri(output_uri)
    human_keys = by_iteration(k for k in iter_keys(s3, bucket, base + CONSOLIDATION_PREFIX) if k.endswith(".json"))
    machine_keys = [
        k for k in iter_keys(s3, bucket, base + ACTIVE_LEARNING_PREFIX) if k.rsplit("/", 1)[-1] == AUTO_ANNOTATION_FILE
    ]
    human_files = ((k, json.loads(_get_body(s3, bucket, k).read())) for k in human_keys)
    machine_files = ((k, _decoded_lines(_get_body(s3, bucket, k))) for k in machine_keys)
    return tally_rounds(human_files, machine_files, attribute)


def read_log_messages(logs, log_group: str, stream_prefix: str) -> list[str]:
    """All messages of every stream starting with `stream_prefix`, oldest first within each stream.

    get_log_events pages forward until nextForwardToken comes back unchanged (the end, per the API), as the notebook
    does. A missing group or stream yields no messages: a job still training has no logs yet.
    """
    messages: list[str] = []
    try:
        streams: list[str] = []
        for page in logs.get_paginator("describe_log_streams").paginate(
            logGroupName=log_group, logStreamNamePrefix=stream_prefix
        ):
            streams.extend(s["logStreamName"] for s in page.get("logStreams", []))
        for stream in sorted(streams):
            kwargs = {"logGroupName": log_group, "logStreamName": stream, "startFromHead": True}
            token = None
            while True:
                page = logs.get_log_events(**kwargs, **({"nextToken": token} if token else {}))
                messages.extend(event["message"] for event in page.get("events", []))
                if page.get("nextForwardToken") in (None, token):
                    break
                token = page["nextForwardToken"]
    except ClientError as exc:
        if not is_not_found_error(exc):
            raise
    return messages


def read_training_curves(s3, logs, output_uri: str) -> list[TrainingCurve]:
    """One curve per model artifact under `training/`, in (iteration, name) order."""
    bucket, base = split_s3_uri(output_uri)
    jobs = sorted(
        {found for key in iter_keys(s3, bucket, base + TRAINING_PREFIX) if (found := training_job_of(key))},
        key=lambda pair: (pair[0] if pair[0] is not None else -1, pair[1]),
    )
    curves = []
    for iteration, name in jobs:
        # Streams are `<training-job-name>/algo-1-<epoch>`; the slash keeps `...-train-1` from matching `...-train-10`.
        samples, maps = parse_training_log(read_log_messages(logs, TRAINING_LOG_GROUP, name + "/"))
        curves.append(TrainingCurve(name, iteration, samples, maps))
    return curves


def read_output_manifest(s3, manifest_uri: str, attribute: str) -> list[ImageLabel]:
    """The final labels, streamed (manifests of big jobs run to hundreds of MB); [] when the manifest is not there."""
    bucket, key = split_s3_uri(manifest_uri)
    try:
        body = _get_body(s3, bucket, key)
    except ClientError as exc:
        if not is_missing_s3_object(exc):
            raise
        log.warning("output manifest %s does not exist (yet)", manifest_uri)
        return []
    return [parse_manifest_line(line, attribute) for line in read_manifest(body.iter_lines())]


def read_job_outputs(s3, logs, description: dict) -> JobOutputs:
    """Everything the report needs from one job, finished or partial, given its DescribeLabelingJob response."""
    output_uri = job_output_uri(description)
    attribute = description["LabelAttributeName"]
    manifest_uri = (description.get("LabelingJobOutput") or {}).get("OutputDatasetS3Uri")
    return JobOutputs(
        job_name=description["LabelingJobName"],
        output_uri=output_uri,
        label_attribute=attribute,
        manifest_uri=manifest_uri,
        rounds=read_rounds(s3, output_uri, attribute),
        training=read_training_curves(s3, logs, output_uri),
        labels=read_output_manifest(s3, manifest_uri, attribute) if manifest_uri else [],
    )
