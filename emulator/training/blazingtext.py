"""BlazingText in `mode supervised`: its channels, its logs, its artifact and its batch-inference formats, around
the fastText-style classifier of `emulator.sim.fasttext`.

Labels travel as fastText does: `__label__<class>`. An augmented manifest's label attribute is the integer class
index a Ground Truth text-classification job writes, so class 2 becomes `__label__2`, which is what the transform
output names. The artifact `model.tar.gz` holds `model.npz` (arrays and a JSON header, never a pickle).
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from collections.abc import Callable
from dataclasses import dataclass

from emulator.sim.fasttext import FastTextClassifier, FastTextParams, TrainingInterrupted
from emulator.training.data import DataError, S3Data

__all__ = [
    "ARTIFACT_MEMBER",
    "BlazingTextModel",
    "TrainingInterrupted",
    "is_blazingtext_image",
    "read_channel",
    "train",
]

# `<account>.dkr.ecr.<region>.amazonaws.com[.cn]/blazingtext[:tag]`, the per-region images of the built-in algorithm.
_IMAGE = re.compile(r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/blazingtext(:[\w.-]+)?$")
LABEL_PREFIX = "__label__"
ARTIFACT_MEMBER = "model.npz"


def is_blazingtext_image(image: str) -> bool:
    return bool(_IMAGE.match(image or ""))


@dataclass
class Examples:
    texts: list[str]
    labels: list[str]


def read_channel(data: S3Data, name: str, channel: dict) -> Examples:
    """A `train`/`validation` channel: an augmented manifest (`AttributeNames ["source", "<attr>"]`, the label an
    integer class index) or File-mode objects of `__label__<class> <text>` lines."""
    source = channel.get("DataSource", {}).get("S3DataSource")
    if not source:
        raise DataError(f"channel {name}: only S3DataSource is supported")
    what = f"channel {name}"
    if source.get("S3DataType") == "AugmentedManifestFile":
        attributes = source.get("AttributeNames") or []
        if len(attributes) != 2:
            raise DataError(
                f"{what}: BlazingText reads AugmentedManifestFile with AttributeNames [text, label], got {attributes}"
            )
        texts, labels = [], []
        records = data.augmented_manifest(source["S3Uri"], attributes, what)
        for number, record in enumerate(records, start=1):
            text, label = record[attributes[0]], record[attributes[1]]
            if not isinstance(text, str):
                raise DataError(f"{what}: record {number} of {source['S3Uri']}: {attributes[0]!r} is not a string")
            if isinstance(label, bool) or not isinstance(label, int | str) or str(label).strip() == "":
                raise DataError(
                    f"{what}: record {number} of {source['S3Uri']}: {attributes[1]!r} must be a class index, "
                    f"got {label!r}"
                )
            texts.append(text)
            labels.append(f"{LABEL_PREFIX}{label}")
        return Examples(texts, labels)
    texts, labels = [], []
    for relative, uri in data.objects(source, what):
        raw = data.read(uri).decode("utf-8", errors="replace")
        for number, line in enumerate(raw.splitlines(), start=1):
            tokens = line.split()
            if not tokens:
                continue
            if not tokens[0].startswith(LABEL_PREFIX) or tokens[0] == LABEL_PREFIX:
                raise DataError(f"{what}: {relative} line {number} does not start with __label__<class>")
            texts.append(" ".join(t for t in tokens[1:] if not t.startswith(LABEL_PREFIX)))
            labels.append(tokens[0])
    if not texts:
        raise DataError(f"{what}: no training examples under {source['S3Uri']}")
    return Examples(texts, labels)


@dataclass
class Trained:
    artifact_files: dict[str, bytes]
    metrics: dict[str, float]
    model: FastTextClassifier


def train(
    hyperparameters: dict[str, str],
    training: Examples,
    validation: Examples | None,
    log: Callable[[str], None],
    should_stop: Callable[[], bool],
) -> Trained:
    """Train, logging as the algorithm does (per-epoch accuracies, then `#train_accuracy` / `#validation_accuracy`);
    ValueError for a bad hyperparameter or channel, TrainingInterrupted when `should_stop()` says so."""
    params = FastTextParams.from_hyperparameters(hyperparameters)
    log(f"Number of train examples: {len(training.texts)}")
    if validation is not None:
        log(f"Number of validation examples: {len(validation.texts)}")
    log(f"Number of labels: {len(set(training.labels))}")
    log(
        "Final configuration: "
        + json.dumps({"mode": "supervised", **{k: v for k, v in vars(params).items() if k != "seed"}})
    )

    def on_epoch(epoch: int, train_accuracy: float, validation_accuracy: float | None) -> None:
        line = f"Epoch {epoch}: train accuracy {train_accuracy:.4f}"
        if validation_accuracy is not None:
            line += f", validation accuracy {validation_accuracy:.4f}"
        log(line)

    model = FastTextClassifier.train(
        training.texts,
        training.labels,
        params,
        validation=(validation.texts, validation.labels) if validation is not None else None,
        on_epoch=on_epoch,
        should_stop=should_stop,
    )
    _, train_accuracy, validation_accuracy = next(h for h in model.history if h[0] == model.best_epoch)
    metrics = {"train:accuracy": train_accuracy}
    log(f"#train_accuracy: {train_accuracy:.4f}")
    if validation_accuracy is not None:
        metrics["validation:accuracy"] = validation_accuracy
        log(f"#validation_accuracy: {validation_accuracy:.4f}")
    log(f"Training finished: {len(model.history)} epochs, kept epoch {model.best_epoch}")
    return Trained({ARTIFACT_MEMBER: model.to_bytes()}, metrics, model)


class RecordError(Exception):
    """A request the model cannot answer; the message names the record."""


class BlazingTextModel:
    """A trained BlazingText model answering batch-transform requests in the algorithm's formats."""

    def __init__(self, classifier: FastTextClassifier) -> None:
        self.classifier = classifier

    @classmethod
    def from_artifact(cls, artifact: bytes) -> BlazingTextModel:
        try:
            with tarfile.open(fileobj=io.BytesIO(artifact), mode="r:*") as tar:
                member = tar.extractfile(ARTIFACT_MEMBER)
                payload = member.read() if member else b""
        except (tarfile.TarError, KeyError) as exc:
            raise ValueError(f"the artifact is not a BlazingText model.tar.gz with {ARTIFACT_MEMBER}: {exc}") from exc
        return cls(FastTextClassifier.from_bytes(payload))

    def invoke(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        """`application/jsonlines`: `{"source": "...", "k": n}` per line → `{"label": [...], "prob": [...]}` per
        line; `application/json`: `{"instances": [...], "configuration": {"k": n}}` → a JSON list of the same."""
        kind = content_type.split(";")[0].strip()
        text = body.decode("utf-8")
        if kind == "application/jsonlines":
            records = []
            for number, line in enumerate(text.splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise RecordError(f"line {number} of the request is not JSON: {exc.msg}") from exc
            answers = self._predict(records, default_k=1)
            return "".join(json.dumps(a) + "\n" for a in answers).encode(), "application/jsonlines"
        if kind == "application/json":
            try:
                payload = json.loads(text)
            except json.JSONDecodeError as exc:
                raise RecordError(f"the request is not JSON: {exc.msg}") from exc
            if not isinstance(payload, dict) or not isinstance(payload.get("instances"), list):
                raise RecordError('an application/json request must be {"instances": [...]}')
            k = (payload.get("configuration") or {}).get("k", 1)
            records = [{"source": s, "k": k} for s in payload["instances"]]
            return json.dumps(self._predict(records, default_k=1)).encode(), "application/json"
        raise RecordError(f"BlazingText accepts application/jsonlines or application/json, not {content_type!r}")

    def _predict(self, records: list, default_k: int) -> list[dict]:
        texts, ks = [], []
        for number, record in enumerate(records, start=1):
            if not isinstance(record, dict) or not isinstance(record.get("source"), str):
                raise RecordError(f'record {number} has no "source" string: {json.dumps(record)[:200]}')
            k = record.get("k", default_k)
            if isinstance(k, bool) or not isinstance(k, int) or k < 1:
                raise RecordError(f'record {number}: "k" must be a positive integer, got {k!r}')
            texts.append(record["source"])
            ks.append(k)
        probs = self.classifier.predict_proba(texts)
        labels = self.classifier.labels
        answers = []
        for row, k in zip(probs, ks, strict=True):
            order = sorted(range(len(labels)), key=lambda j: -row[j])[: min(k, len(labels))]
            answers.append({"label": [labels[j] for j in order], "prob": [float(row[j]) for j in order]})
        return answers
