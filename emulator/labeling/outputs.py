"""What a labeling job writes under `<S3OutputPath>/<job-name>/`, in the service's own layout and formats.

The seed notebook's post-processing code reads these files unchanged: consolidation responses per iteration named
`%Y-%m-%d_%H:%M:%S.json`, auto-annotations as `<token> <json>` lines in `auto_annotator_output.txt` two directories
below the iteration number, model artifacts under `training/<iteration>/.../<training-job-name>/output/`.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from datetime import UTC, datetime

from emulator.labeling.storage import S3Location, Storage

Box = tuple[int, int, int, int]  # left, top, width, height in pixels


def file_stamp(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d_%H:%M:%S")


def creation_date(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def submission_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class Label:
    """A bounding-box label: boxes with one confidence each."""

    boxes: list[Box]
    confidences: list[float]
    human: bool
    ts: float


@dataclass
class ClassLabel:
    """A classification label: an index into the label categories, and how sure the labeler was."""

    class_id: int
    confidence: float
    human: bool
    ts: float


class OutputWriter:
    def __init__(
        self,
        storage: Storage,
        base: S3Location,
        job_name: str,
        attribute: str,
        class_names: list[str],
    ) -> None:
        self.storage = storage
        self.base = base
        self.job_name = job_name
        self.attribute = attribute
        self.class_names = class_names

    def at(self, *parts: str) -> S3Location:
        return self.base.join(*parts)

    # -- label content -------------------------------------------------------------------------------------------
    def label_content(self, label: Label, width: int, height: int) -> dict:
        """`<attr>` and `<attr>-metadata` for one object, as in the output manifest."""
        return {
            self.attribute: {
                "image_size": [{"width": width, "height": height, "depth": 3}],
                "annotations": [
                    {"class_id": 0, "left": b[0], "top": b[1], "width": b[2], "height": b[3]} for b in label.boxes
                ],
            },
            f"{self.attribute}-metadata": {
                "objects": [{"confidence": round(c, 2)} for c in label.confidences],
                "class-map": {str(i): name for i, name in enumerate(self.class_names)},
                "type": "groundtruth/object-detection",
                "human-annotated": "yes" if label.human else "no",
                "creation-date": creation_date(label.ts),
                "job-name": f"labeling-job/{self.job_name.lower()}",
            },
        }

    def class_label_content(self, label: ClassLabel, type_name: str) -> dict:
        """`<attr>` (the class index) and `<attr>-metadata` for one classified object."""
        return {
            self.attribute: label.class_id,
            f"{self.attribute}-metadata": {
                "class-name": self.class_names[label.class_id],
                "confidence": round(label.confidence, 2),
                "human-annotated": "yes" if label.human else "no",
                "job-name": f"labeling-job/{self.job_name.lower()}",
                "type": type_name,
                "creation-date": creation_date(label.ts),
            },
        }

    # -- human annotations ---------------------------------------------------------------------------------------
    def worker_response(
        self, iteration: int, index: int, contents: list[dict], worker_ids: list[str], ts: float
    ) -> None:
        """One object's worker answers, each `answerContent` as the task's template names it."""
        body = {
            "answers": [
                {"answerContent": content, "submissionTime": submission_time(ts), "workerId": worker_id}
                for content, worker_id in zip(contents, worker_ids, strict=True)
            ]
        }
        key = self.at("annotations", "worker-response", f"iteration-{iteration}", str(index), f"{file_stamp(ts)}.json")
        self.storage.write(key, json.dumps(body))

    def consolidation(self, iteration: int, entries: list[tuple[int, dict]], ts: float) -> None:
        body = [
            {"datasetObjectId": str(index), "consolidatedAnnotation": {"content": content}}
            for index, content in entries
        ]
        key = self.at(
            "annotations",
            "consolidated-annotation",
            "consolidation-response",
            f"iteration-{iteration}",
            f"{file_stamp(ts)}.json",
        )
        self.storage.write(key, json.dumps(body))

    # -- active learning -----------------------------------------------------------------------------------------
    def validation_set(self, iteration: int, lines: list[dict]) -> None:
        key = self.at("activelearning", "validation", str(iteration), "validation_input.manifest")
        self.storage.write(key, "".join(json.dumps(line) + "\n" for line in lines))

    def auto_annotations(self, iteration: int, entries: list[tuple[int, dict]]) -> None:
        # `<token> <json>` per line; the notebook reads the iteration from the directory two levels above the file.
        text = "".join(f"{index} {json.dumps(content)}\n" for index, content in entries)
        self.storage.write(
            self.at("activelearning", "auto-annotation", str(iteration), "output", "auto_annotator_output.txt"), text
        )

    def inference(self, iteration: int, inputs: list[dict], predictions: list[dict]) -> None:
        self.storage.write(
            self.at("inference", str(iteration), "input", "inference_input.manifest"),
            "".join(json.dumps(line) + "\n" for line in inputs),
        )
        self.storage.write(
            self.at("inference", str(iteration), "output", "inference_input.manifest.out"),
            "".join(json.dumps(p) + "\n" for p in predictions),
        )

    def training_job_name(self, iteration: int) -> str:
        digest = hashlib.sha256(self.job_name.lower().encode()).hexdigest()[:6]
        return f"{self.job_name[:44].rstrip('-')}-{digest}-train-{iteration}"

    def model_artifact(self, iteration: int, training_job: str, weights: bytes, meta: dict) -> S3Location:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for name, data in (("model.npz", weights), ("model.json", json.dumps(meta, indent=2).encode())):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        loc = self.at("training", str(iteration), "algorithm", training_job, "output", "model.tar.gz")
        self.storage.write(loc, buf.getvalue())
        return loc

    # -- manifests -----------------------------------------------------------------------------------------------
    def manifest(self, lines: list[dict], final: bool, iteration: int = 0) -> S3Location:
        text = "".join(json.dumps(line) + "\n" for line in lines)
        loc = (
            self.at("manifests", "output", "output.manifest")
            if final
            else self.at("manifests", "intermediate", str(iteration), "output.manifest")
        )
        self.storage.write(loc, text)
        return loc


def read_model_artifact(data: bytes) -> tuple[bytes, dict]:
    """(weights npz bytes, metadata) from a model.tar.gz; only the two expected regular files are read."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            members = {m.name: m for m in tar.getmembers() if m.isfile()}
            if "model.npz" not in members:
                raise ValueError("model.tar.gz holds no model.npz")
            weights = tar.extractfile(members["model.npz"]).read()
            meta = json.loads(tar.extractfile(members["model.json"]).read()) if "model.json" in members else {}
    except (tarfile.TarError, OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"model.tar.gz is unreadable: {exc}") from exc
    return weights, meta
