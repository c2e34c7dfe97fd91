"""What differs between task types (bounding boxes, text and image classification), behind one small interface.

The runner's schedule is the same for every type; a task type says how to read a data object, how the simulated
crowd answers and how the answers are consolidated, what the learner is (if any), how confident it is and how good
its labels are against the human ones, and what a label looks like in the output files.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from PIL import Image

from emulator.labeling.outputs import ClassLabel, Label, OutputWriter
from emulator.labeling.storage import Storage, StorageError
from emulator.sim.fasttext import FastTextClassifier, FastTextParams
from emulator.sim.learner import Detector, calibrate_threshold
from emulator.sim.openimages import BIRD_SUBCLASSES, DISPLAY_NAMES, read_reference
from emulator.sim.texttruth import TextTruth
from emulator.sim.workforce import (
    class_answers,
    classification_crowd,
    consolidate,
    consolidate_classes,
    item_difficulty,
    worker_answers,
)
from groundtruth.quality import image_miou

MAX_IMAGE_BYTES = 6 * 1024 * 1024
TRAINING_EPOCHS = 10  # the detector's epochs per round
QUALITY_TARGET_MIOU = 0.6
# Auto-labels must agree with the consolidated human labels on 90% of the validation objects they would cover: at
# least one public worker's accuracy (about 88% here). The reference is itself about 3% wrong, so 95% agreement
# would ask for near-perfect labels; AWS publishes no figure for classification.
QUALITY_TARGET_ACCURACY = 0.9
# The service does not publish its text learner's settings. BlazingText's learning rate 0.05 and min_count 5 (the
# seed's, tuned for 10,000 texts) leave the model near uniform on a labeling job's first few hundred labels, so it
# would never auto-label (measured on the synthetic headlines); a faster rate and every word keep it learning.
TEXT_HYPERPARAMETERS = {
    "mode": "supervised",
    "epochs": "25",
    "learning_rate": "0.2",
    "min_count": "1",
    "min_epochs": "5",
    "early_stopping": "True",
    "patience": "5",
    "vector_dim": "20",
    "word_ngrams": "2",
}


class JobFailed(Exception):
    """The job cannot go on; the message becomes its FailureReason."""


@dataclass
class DataObject:
    index: int
    line: dict
    source: str  # the `source-ref` URI of an image, or the `source` text
    image: bytes = b""
    width: int = 0
    height: int = 0
    reference: Any = None  # what the simulated workers see as the truth: reference boxes, or a class index
    difficulty: float = 0.0
    label: Label | ClassLabel | None = None
    prelabeled: bool = False  # the input line carried its label; it is kept and nobody is paid for it
    failure: str | None = None


@dataclass
class HumanAnswer:
    """One object's human labeling: every worker's answer (as written in worker-response files) and the label."""

    worker_ids: list[str]
    contents: list[dict]
    label: Label | ClassLabel


@dataclass
class ClassPrediction:
    class_id: int
    confidence: float
    probabilities: list[float] = field(default_factory=list)


class TaskType(Protocol):
    """One task type's part of a job. The learner's methods (load_model to infer_seconds) are called only when
    `learns`."""

    lambda_suffix: str
    algorithm: str
    source_key: str
    metric: str  # how the training log names the per-epoch validation score
    learns: bool  # False: no auto-labeling learner is simulated, humans label everything

    def load(self, objects: list[DataObject], storage: Storage, attribute: str) -> None: ...
    def human_labels(
        self, objects: list[DataObject], workers: int, rng: np.random.Generator, ts: float
    ) -> list[HumanAnswer]: ...
    def content(self, obj: DataObject, writer: OutputWriter) -> dict: ...
    def load_model(self, weights: bytes, meta: dict) -> Any: ...
    def train(
        self,
        training: list[DataObject],
        validation: list[DataObject],
        initial: bytes | None,
        seed: int,
        on_epoch: Callable[[int, float], None],
    ) -> Any: ...
    def training_config(self, n_training: int, warm: bool) -> dict[str, str]: ...
    def model_bytes(self, model: Any) -> tuple[bytes, str]: ...
    def predict(self, model: Any, objects: list[DataObject]) -> list[Any]: ...
    def calibrate(
        self, model: Any, validation: list[DataObject], pending: list[float]
    ) -> tuple[float | None, list[float]]: ...
    def machine_label(self, prediction: Any, ts: float) -> Label | ClassLabel: ...
    def inference_records(self, objects: list[DataObject], predictions: list[Any]) -> tuple[list[dict], list[dict]]: ...
    def train_seconds(self, n: int) -> float: ...
    def infer_seconds(self, n: int) -> float: ...


def task_type(request: dict, class_names: list[str], text_truth: TextTruth, crowd_prefix: str) -> TaskType:
    """The task type a request's PreHumanTaskLambdaArn names, or JobFailed saying what the emulator runs."""
    pre = request["HumanTaskConfig"].get("PreHumanTaskLambdaArn", "")
    suffix = pre.rsplit(":function:PRE-", 1)[-1] if ":function:PRE-" in pre else None
    types: dict[str, Callable[[], TaskType]] = {
        "BoundingBox": lambda: BoundingBoxTask(class_names, crowd_prefix),
        "TextMultiClass": lambda: TextClassificationTask(class_names, text_truth, crowd_prefix),
        "ImageMultiClass": lambda: ImageClassificationTask(class_names, crowd_prefix),
    }
    if suffix not in types:
        raise JobFailed(
            "ClientError: the emulator simulates the built-in task types "
            f"{', '.join('PRE-' + t for t in types)} only, got PreHumanTaskLambdaArn {pre or 'none'!r}"
        )
    acs = (request["HumanTaskConfig"].get("AnnotationConsolidationConfig") or {}).get(
        "AnnotationConsolidationLambdaArn", ""
    )
    if acs and not acs.endswith(f":function:ACS-{suffix}"):
        raise JobFailed(
            f"ClientError: AnnotationConsolidationLambdaArn {acs!r} does not consolidate PRE-{suffix} tasks"
        )
    task = types[suffix]()
    algo = (request.get("LabelingJobAlgorithmsConfig") or {}).get("LabelingJobAlgorithmSpecificationArn", "")
    if algo and not algo.endswith(f"labeling-job-algorithm-specification/{task.algorithm}"):
        raise JobFailed(
            f"ClientError: LabelingJobAlgorithmSpecificationArn {algo!r} is not the {task.algorithm} algorithm "
            f"that PRE-{suffix} tasks are auto-labeled with"
        )
    return task


def _read_images(objects: list[DataObject], storage: Storage) -> list[str]:
    """Read every image, marking oversized or unreadable ones as failed objects; the URIs that could not be read."""
    missing = []
    for obj in objects:
        try:
            obj.image = storage.read(obj.source)
        except StorageError as exc:
            missing.append(str(exc))
            continue
        if len(obj.image) > MAX_IMAGE_BYTES:
            obj.failure = f"ClientError: {obj.source} is {len(obj.image)} bytes, over the 6 MB image limit"
            obj.image = b""
            continue
        obj.reference = read_reference(obj.image)
        try:
            obj.width, obj.height = Image.open(io.BytesIO(obj.image)).size
        except OSError:
            obj.failure = f"ClientError: {obj.source} is not a readable image"
            continue
        if obj.reference is None:
            obj.failure = (
                f"ClientError: {obj.source} carries no reference boxes; the emulator's simulated workforce "
                "labels images of the synthetic Open Images mirror only"
            )
    return missing


def _raise_missing(missing: list[str]) -> None:
    if missing:
        shown = "; ".join(missing[:3])
        raise JobFailed(f"ClientError: {len(missing)} data object(s) could not be read: {shown}")


# -- bounding boxes -------------------------------------------------------------------------------------------------
class BoundingBoxTask:
    lambda_suffix = "BoundingBox"
    algorithm = "object-detection"
    source_key = "source-ref"
    metric = "validation mAP"
    learns = True

    def __init__(self, class_names: list[str], crowd_prefix: str) -> None:
        self.class_names = class_names
        self.crowd_prefix = crowd_prefix

    def load(self, objects: list[DataObject], storage: Storage, attribute: str) -> None:
        _raise_missing(_read_images(objects, storage))

    def human_labels(
        self, objects: list[DataObject], workers: int, rng: np.random.Generator, ts: float
    ) -> list[HumanAnswer]:
        results = []
        for obj in objects:
            answers = worker_answers(obj.reference, workers, rng)
            consolidated = consolidate(answers)
            worker_ids = [f"{self.crowd_prefix}.{rng.integers(16**12):012X}" for _ in range(len(answers))]
            contents = [
                {
                    "boundingBox": {
                        "boundingBoxes": [
                            {"label": self.class_names[0], "left": b[0], "top": b[1], "width": b[2], "height": b[3]}
                            for b in boxes
                        ],
                        "inputImageProperties": {"width": obj.width, "height": obj.height},
                    }
                }
                for boxes in answers
            ]
            label = Label(
                boxes=[b for b, _ in consolidated], confidences=[c for _, c in consolidated], human=True, ts=ts
            )
            results.append(HumanAnswer(worker_ids, contents, label))
        return results

    def content(self, obj: DataObject, writer: OutputWriter) -> dict:
        return writer.label_content(obj.label, obj.width, obj.height)

    def load_model(self, weights: bytes, meta: dict) -> Detector:
        return Detector.from_npz(weights)

    def train(
        self,
        training: list[DataObject],
        validation: list[DataObject],
        initial: bytes | None,
        seed: int,
        on_epoch: Callable[[int, float], None],
    ) -> Detector:
        # Every round trains on all human labels so far from the job's starting point (retraining, as the service
        # does), rather than nudging the previous round's model: a fine-tuned model stays close to where it started.
        model = Detector.from_npz(initial) if initial is not None else Detector.new(seed)
        model.fit(
            [o.image for o in training],
            [o.label.boxes for o in training],
            epochs=TRAINING_EPOCHS,
            validation=([o.image for o in validation], [o.label.boxes for o in validation]),
            on_epoch=on_epoch,
        )
        return model

    def training_config(self, n_training: int, warm: bool) -> dict[str, str]:
        return {
            "num_training_samples": str(n_training),
            "epochs": str(TRAINING_EPOCHS),
            "num_classes": str(len(self.class_names)),
            "warm_start": "true" if warm else "false",
        }

    def model_bytes(self, model: Detector) -> tuple[bytes, str]:
        return model.to_npz(), "gt-emulator-detector"

    def predict(self, model: Detector, objects: list[DataObject]) -> list:
        return [model.predict(o.image) for o in objects]

    def calibrate(
        self, model: Detector, validation: list[DataObject], pending: list[float]
    ) -> tuple[float | None, list[float]]:
        confidences, mious = [], []
        for obj in validation:
            pred = model.predict(obj.image)
            confidences.append(model.calibration_confidence(obj.image, pred))
            mious.append(image_miou(pred.boxes, obj.label.boxes))
        return calibrate_threshold(confidences, mious, target=QUALITY_TARGET_MIOU, pending=pending), confidences

    def machine_label(self, prediction, ts: float) -> Label:
        return Label(
            boxes=[b for b, _ in prediction.boxes], confidences=[c for _, c in prediction.boxes], human=False, ts=ts
        )

    def inference_records(self, objects: list[DataObject], predictions: list) -> tuple[list[dict], list[dict]]:
        inputs = [{"source-ref": o.source} for o in objects]
        outputs = [
            {"source-ref": o.source, "prediction": [[0, c, *b] for b, c in p.boxes], "confidence": p.confidence}
            for o, p in zip(objects, predictions, strict=True)
        ]
        return inputs, outputs

    def train_seconds(self, n: int) -> float:
        return 600 + 3 * n

    def infer_seconds(self, n: int) -> float:
        return 300 + 0.5 * n


# -- classification (shared by text and images) ---------------------------------------------------------------------
class _Classification:
    kind = ""  # "text" | "image"
    metric = "validation accuracy"

    def __init__(self, class_names: list[str], crowd_prefix: str) -> None:
        self.class_names = class_names
        self.crowd_prefix = crowd_prefix
        self.crowd = None
        self.evidence: dict[str, tuple[float, float]] = {}  # what earlier batches showed of each worker

    @property
    def type_name(self) -> str:
        return f"groundtruth/{self.kind}-classification"

    def keep_prelabeled(self, objects: list[DataObject], attribute: str) -> None:
        """An input line that already carries `<attr>` (and its metadata) keeps its label and is not sent out."""
        for number, obj in enumerate(objects, start=1):
            if attribute not in obj.line:
                continue
            value, meta = obj.line[attribute], obj.line.get(f"{attribute}-metadata")
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < len(self.class_names):
                raise JobFailed(
                    f"ClientError: input manifest line {number} carries {attribute}={value!r}, which is not a class "
                    f"index of the {len(self.class_names)} label categories"
                )
            meta = meta if isinstance(meta, dict) else {}
            obj.label = ClassLabel(
                class_id=value,
                confidence=float(meta.get("confidence", 1.0)),
                human=meta.get("human-annotated", "yes") == "yes",
                ts=0.0,
            )
            obj.prelabeled = True

    def human_labels(
        self, objects: list[DataObject], workers: int, rng: np.random.Generator, ts: float
    ) -> list[HumanAnswer]:
        if self.crowd is None:
            self.crowd = classification_crowd(rng, self.crowd_prefix, size=max(3 * workers, 40))
        n_classes = len(self.class_names)
        batch, asked = [], []
        for obj in objects:
            people = [self.crowd[i] for i in rng.choice(len(self.crowd), size=workers, replace=False)]
            answers = class_answers(obj.reference, n_classes, people, obj.difficulty, rng)
            asked.append(people)
            batch.append([(p.worker_id, c) for p, c in zip(people, answers, strict=True)])
        consolidated, self.evidence = consolidate_classes(batch, n_classes, self.evidence)
        tag = "crowd-classifier" if self.kind == "text" else "crowd-image-classifier"
        return [
            HumanAnswer(
                worker_ids=[w for w, _ in answers],
                contents=[{tag: {"label": self.class_names[c]}} for _, c in answers],
                label=ClassLabel(class_id=class_id, confidence=confidence, human=True, ts=ts),
            )
            for answers, (class_id, confidence) in zip(batch, consolidated, strict=True)
        ]

    def content(self, obj: DataObject, writer: OutputWriter) -> dict:
        if obj.prelabeled:
            attribute = writer.attribute
            return {k: obj.line[k] for k in (attribute, f"{attribute}-metadata") if k in obj.line}
        return writer.class_label_content(obj.label, self.type_name)

    def machine_label(self, prediction: ClassPrediction, ts: float) -> ClassLabel:
        return ClassLabel(class_id=prediction.class_id, confidence=prediction.confidence, human=False, ts=ts)

    def train_seconds(self, n: int) -> float:
        return 300 + 0.05 * n

    def infer_seconds(self, n: int) -> float:
        return 120 + 0.01 * n


def _difficulty(key: str) -> float:
    """An item's ambiguity, fixed by its content so the same text or image is as hard in every job."""
    return item_difficulty(np.random.default_rng(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")))


class TextClassificationTask(_Classification):
    lambda_suffix = "TextMultiClass"
    algorithm = "text-classification"
    source_key = "source"
    kind = "text"
    learns = True

    def __init__(self, class_names: list[str], truth: TextTruth, crowd_prefix: str) -> None:
        super().__init__(class_names, crowd_prefix)
        self.truth = truth

    def __getstate__(self) -> dict:
        # a copy of the task for its learner (learner_process.py): a learner never knows the true classes
        return {**self.__dict__, "truth": None}

    def load(self, objects: list[DataObject], storage: Storage, attribute: str) -> None:
        self.keep_prelabeled(objects, attribute)
        unknown, foreign = [], []
        for number, obj in enumerate(objects, start=1):
            if obj.prelabeled:
                continue
            name = self.truth.lookup(obj.source)
            if name is None:
                unknown.append(f"line {number} {obj.source[:60]!r}")
            elif name not in self.class_names:
                foreign.append(f"line {number} is {name!r}")
            else:
                obj.reference = self.class_names.index(name)
                obj.difficulty = _difficulty(obj.source)
        if unknown:
            raise JobFailed(
                f"ClientError: the emulator knows no true class for {len(unknown)} text(s), so its simulated workers "
                f"cannot label them (register them with `python -m emulator seed-text` or POST "
                f"/_emulator/text-truth): {'; '.join(unknown[:3])}"
            )
        if foreign:
            raise JobFailed(
                f"ClientError: {len(foreign)} text(s) belong to classes outside the label categories "
                f"{self.class_names}: {'; '.join(foreign[:3])}"
            )

    def load_model(self, weights: bytes, meta: dict) -> FastTextClassifier:
        model = FastTextClassifier.from_bytes(weights)
        if not set(model.labels) <= set(self.class_names):
            raise ValueError(f"the model's classes {model.labels} are not among the label categories")
        return model

    def params(self, seed: int) -> FastTextParams:
        return FastTextParams.from_hyperparameters({**TEXT_HYPERPARAMETERS, "seed": str(seed)})

    def train(
        self,
        training: list[DataObject],
        validation: list[DataObject],
        initial: bytes | None,
        seed: int,
        on_epoch: Callable[[int, float], None],
    ) -> FastTextClassifier:
        # fastText has no warm start: every round trains afresh on all human labels (an initial model is used
        # as given in the first round only).
        names = self.class_names
        return FastTextClassifier.train(
            [o.source for o in training],
            [names[o.label.class_id] for o in training],
            self.params(seed),
            validation=([o.source for o in validation], [names[o.label.class_id] for o in validation]),
            on_epoch=lambda epoch, _train, val: on_epoch(epoch - 1, float(val)),
        )

    def training_config(self, n_training: int, warm: bool) -> dict[str, str]:
        return {"num_training_samples": str(n_training), **TEXT_HYPERPARAMETERS}

    def model_bytes(self, model: FastTextClassifier) -> tuple[bytes, str]:
        return model.to_bytes(), "gt-emulator-fasttext"

    def predict(self, model: FastTextClassifier, objects: list[DataObject]) -> list[ClassPrediction]:
        probs = model.predict_proba([o.source for o in objects])
        # columns in the model's order -> the label categories' order (a class the model never saw stays 0)
        by_category = np.zeros((len(objects), len(self.class_names)))
        for column, name in enumerate(model.labels):
            by_category[:, self.class_names.index(name)] = probs[:, column]
        return [
            ClassPrediction(int(np.argmax(row)), float(np.max(row)), [round(float(p), 4) for p in row])
            for row in by_category
        ]

    def calibrate(
        self, model: FastTextClassifier, validation: list[DataObject], pending: list[float]
    ) -> tuple[float | None, list[float]]:
        """The lowest probability above which the model's validation labels agree with the humans' at the accuracy
        target (the validation texts are never trained on, so their confidences are honest)."""
        predictions = self.predict(model, validation)
        confidences = [p.confidence for p in predictions]
        correct = [float(p.class_id == o.label.class_id) for p, o in zip(predictions, validation, strict=True)]
        threshold = calibrate_threshold(confidences, correct, target=QUALITY_TARGET_ACCURACY, pending=pending)
        return threshold, confidences

    def inference_records(
        self, objects: list[DataObject], predictions: list[ClassPrediction]
    ) -> tuple[list[dict], list[dict]]:
        inputs = [{"source": o.source} for o in objects]
        outputs = [
            {"source": o.source, "prediction": p.probabilities, "confidence": round(p.confidence, 4)}
            for o, p in zip(objects, predictions, strict=True)
        ]
        return inputs, outputs


class ImageClassificationTask(_Classification):
    """Images of the synthetic mirror, classified by their most prominent reference object. No image classifier is
    simulated, so humans label everything even with auto-labeling asked for."""

    lambda_suffix = "ImageMultiClass"
    algorithm = "image-classification"
    source_key = "source-ref"
    kind = "image"
    learns = False

    def load(self, objects: list[DataObject], storage: Storage, attribute: str) -> None:
        self.keep_prelabeled(objects, attribute)
        pending = [o for o in objects if not o.prelabeled]
        _raise_missing(_read_images(pending, storage))
        unmatched = []
        for obj in pending:
            if obj.failure is not None:
                continue
            name = image_class(obj.reference, self.class_names)
            if name is None:
                unmatched.append(obj.source)
                continue
            obj.reference = self.class_names.index(name)
            obj.difficulty = _difficulty(obj.source)
        if unmatched:
            raise JobFailed(
                f"ClientError: {len(unmatched)} image(s) show none of the label categories {self.class_names} "
                f"(the simulated workers know the mirror's display names and 'Bird'): {'; '.join(unmatched[:3])}"
            )

    def load_model(self, weights: bytes, meta: dict):
        raise ValueError("the emulator simulates no image-classification learner to start from it")


_BIRD_NAMES = set(BIRD_SUBCLASSES)


def image_class(reference, class_names: list[str]) -> str | None:
    """An image's true class among `class_names`: the display name of its largest reference object, or `Bird` for a
    bird whose species is not a category; None when no category fits."""
    if not reference.boxes:
        return None
    largest = max(reference.boxes, key=lambda b: (b.xmax - b.xmin) * (b.ymax - b.ymin))
    name = DISPLAY_NAMES.get(largest.label_name)
    if name in class_names:
        return name
    if (largest.is_bird or name in _BIRD_NAMES) and "Bird" in class_names:
        return "Bird"
    return None
