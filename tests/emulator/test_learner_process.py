"""A labeling job's learner in its own process computes what it computes in the emulator's, and ends cleanly."""

from __future__ import annotations

import pickle
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from emulator.labeling.learner_process import LearnerError, LearnerProcess, RemoteModel
from emulator.labeling.outputs import ClassLabel, Label
from emulator.labeling.tasks import BoundingBoxTask, DataObject, TextClassificationTask
from emulator.sim.openimages import generate_images
from emulator.sim.texttruth import TextTruth
from emulator.sim.workforce import consolidate, worker_answers
from scripts.airflow_processes import poll


@pytest.fixture(scope="module")
def birds() -> list[DataObject]:
    images = [m for m in generate_images(90, seed=7) if m.kind == "bird"][:48]
    rng = np.random.default_rng(3)
    objects = []
    for index, image in enumerate(images):
        boxes = [box for box, _ in consolidate(worker_answers(image.reference, 3, rng))]
        obj = DataObject(index, {"source-ref": f"s3://b/{index}.jpg"}, f"s3://b/{index}.jpg", image=image.jpeg)
        obj.label = Label(boxes=boxes, confidences=[1.0] * len(boxes), human=True, ts=0.0)
        objects.append(obj)
    return objects


def _round(task, objects):
    """One auto-labeling round as the runner does it: train, predict the rest, calibrate on the validation set."""
    training, validation, pending = objects[:24], objects[24:36], objects[36:]
    epochs: list[tuple[int, float]] = []
    model = task.train(training, validation, None, 5, lambda e, s: epochs.append((e, s)))
    predictions = task.predict(model, pending)
    threshold, confidences = task.calibrate(model, validation, [p.confidence for p in predictions])
    return task.model_bytes(model), epochs, predictions, threshold, confidences


def test_the_learner_process_computes_what_the_emulators_process_does(birds):
    task = BoundingBoxTask(["Bird"], "public.us-east-1")
    here = _round(task, birds)
    with LearnerProcess(task, birds, "job-a") as learner:
        there = _round(learner, birds)
        (weights, fmt), *_ = there
        loaded = learner.load_model(weights, {})  # a later job's starting point, from the artifact's bytes
        assert learner.model_bytes(loaded) == (weights, fmt)
        assert learner.predict(loaded, birds[36:]) == there[2]
        # everything that is not the learner's stays the task type's own, in this process
        assert learner.train_seconds(10) == task.train_seconds(10) and learner.metric == "validation mAP"
        process = learner._process
    assert here[0] == there[0]  # the same weights, to the byte
    assert here[1:] == there[1:]  # the same epochs' scores, predictions, threshold and confidences
    assert len(here[1]) > 0 and all(isinstance(p.confidence, float) for p in here[2])
    with pytest.raises(ValueError):  # closed: the child is gone and reaped
        process.is_alive()
    assert learner.exitcode == 0  # it ended on its own when its pipe closed, not terminated


def test_the_truth_stays_behind_and_a_learners_failure_names_its_job():
    truth = TextTruth()
    texts = [("a kestrel hovers over the field", "birds"), ("parliament passes the budget", "news")] * 4
    truth.register(texts)
    task = TextClassificationTask(["birds", "news"], truth, "public.us-east-1")
    copy = pickle.loads(pickle.dumps(task))  # noqa: S301 -- our own bytes: what the child gets, without the truth
    assert copy.truth is None and copy.class_names == ["birds", "news"] and task.truth is truth
    objects = [
        DataObject(i, {}, text, label=ClassLabel(["birds", "news"].index(name), 1.0, True, 0.0))
        for i, (text, name) in enumerate(texts)
    ]
    with LearnerProcess(task, objects, "job-b") as learner:
        with pytest.raises(LearnerError, match=r"learner of job-b failed in predict:(.|\n)*KeyError"):
            learner.predict(RemoteModel(999, b"", "none"), objects)  # no such model in the child
        # the child outlives a call's error and still answers
        model = learner.train(objects, objects, None, 1, lambda e, s: None)
        assert learner.model_bytes(model)[1] == "gt-emulator-fasttext"
        assert [p.class_id for p in learner.predict(model, objects)] == [0, 1] * 4


KILLED_PARENT = """
import time
from emulator.labeling.learner_process import LearnerProcess
from emulator.labeling.tasks import BoundingBoxTask

learner = LearnerProcess(BoundingBoxTask(["Bird"], "public.us-east-1"), [], "job-k")
print(learner._process.pid, flush=True)
time.sleep(600)
"""


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"  # a zombie has ended; only its parent's wait is missing


def test_a_learner_does_not_outlive_a_killed_emulator():
    emulator = subprocess.Popen([sys.executable, "-c", KILLED_PARENT], stdout=subprocess.PIPE, text=True)
    try:
        pid = int(emulator.stdout.readline())
        assert _running(pid)
        emulator.send_signal(signal.SIGKILL)  # no atexit, no cleanup: the learner sees its pipe close
        emulator.wait(timeout=30)
        poll(f"learner process {pid} to end", lambda: not _running(pid), deadline=30, interval=0.1)
    finally:
        emulator.kill()
        emulator.wait(timeout=30)
