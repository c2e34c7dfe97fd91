"""A labeling job's learner in a process of its own.

Training, inference and calibration are the CPU of a labeling job (a 1,250-image job with auto-labeling is about
40 CPU-seconds of numpy on small arrays). In the emulator's process every job's learner shares one GIL, so two jobs
running side by side took as long as one after the other. `LearnerProcess` moves a job's learner into a child
process: the job's runner thread keeps its schedule, its workforce, its outputs and its clock, and asks the child to
train, predict and calibrate. The child runs the task type's own code on its own copies of the job's data objects,
so what it computes is what the runner would have computed in-process, to the bit (tests/emulator/
test_learner_process.py).

The child is started through multiprocessing's forkserver (the emulator is threaded, so no plain fork), is a daemon
of the emulator (it ends with it), and ends on its own when its pipe closes (the emulator was killed). What crosses
the pipe is the emulator's own objects (data objects, labels, model weights, predictions), never anything read
from S3 as a pickle: images cross as bytes.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from emulator.labeling.tasks import DataObject, TaskType

log = logging.getLogger("emulator.labeling")

_context_lock = threading.Lock()
_context: Any = None


def _forkserver() -> Any:
    global _context
    with _context_lock:
        if _context is None:
            _context = multiprocessing.get_context("forkserver")
            # the forkserver imports the learners once; each job's child is forked from it, numpy already loaded
            _context.set_forkserver_preload(["emulator.labeling.learner_process"])
        return _context


class LearnerError(RuntimeError):
    """The learner process failed: its traceback, or how it ended."""


@dataclass
class RemoteModel:
    """A model that lives in the learner process: its handle there, and its serialized weights here."""

    handle: int
    weights: bytes
    model_format: str


class LearnerProcess:
    """`task`'s train / predict / calibrate / load_model / model_bytes in a child process; every other method of
    the task type (human labels, outputs, timings) runs in the caller, through attribute access."""

    def __init__(self, task: TaskType, objects: list[DataObject], name: str) -> None:
        self.task = task
        self.name = name
        ctx = _forkserver()
        self._conn, child = ctx.Pipe()
        # the child needs what a learner reads (images, texts), not the manifest lines nor the truth
        learnable = [dataclasses.replace(o, line={}, reference=None) for o in objects if o.failure is None]
        self._process = ctx.Process(target=_serve, args=(child, task, learnable), name=f"learner {name}", daemon=True)
        self._process.start()
        child.close()
        self._lock = threading.Lock()
        self.exitcode: int | None = None

    def __getattr__(self, attr: str) -> Any:  # everything that is not the learner's: the task type's own
        return getattr(self.task, attr)

    # -- the learner ---------------------------------------------------------------------------------------------
    def train(
        self,
        training: list[DataObject],
        validation: list[DataObject],
        initial: bytes | None,
        seed: int,
        on_epoch: Callable[[int, float], None],
    ) -> RemoteModel:
        handle, epochs, weights, model_format = self._call(
            "train", _labels(training), _labels(validation), initial, seed
        )
        for epoch, score in epochs:
            on_epoch(epoch, score)
        return RemoteModel(handle, weights, model_format)

    def load_model(self, weights: bytes, meta: dict) -> RemoteModel:
        handle, model_format = self._call("load_model", weights, meta)
        return RemoteModel(handle, weights, model_format)

    def model_bytes(self, model: RemoteModel) -> tuple[bytes, str]:
        return model.weights, model.model_format

    def predict(self, model: RemoteModel, objects: list[DataObject]) -> list[Any]:
        return self._call("predict", model.handle, [o.index for o in objects])

    def calibrate(
        self, model: RemoteModel, validation: list[DataObject], pending: list[float]
    ) -> tuple[float | None, list[float]]:
        return self._call("calibrate", model.handle, _labels(validation), pending)

    # -- the process ---------------------------------------------------------------------------------------------
    def _call(self, method: str, *args: Any) -> Any:
        with self._lock:
            try:
                self._conn.send((method, args))
                status, value = self._conn.recv()
            except (EOFError, OSError) as exc:
                self._process.join(timeout=5)
                raise LearnerError(
                    f"the learner process of {self.name} ended (exit code {self._process.exitcode}) during {method}"
                ) from exc
        if status == "error":  # the traceback to the emulator's log, its last line to the job's FailureReason
            log.error("the learner of %s failed in %s:\n%s", self.name, method, value)
            raise LearnerError(f"the learner of {self.name} failed in {method}: {value.strip().splitlines()[-1]}")
        return value

    def close(self) -> None:
        """End the child (it ends at the pipe's close; a child stuck in a computation is terminated) and reap it;
        `exitcode` says how it ended (0: on its own)."""
        with self._lock:
            self._conn.close()
        self._process.join(timeout=10)
        if self._process.is_alive():
            log.warning("the learner process of %s did not end at its pipe's close: terminating it", self.name)
            self._process.terminate()
            self._process.join(timeout=10)
        self.exitcode = self._process.exitcode
        self._process.close()

    def __enter__(self) -> LearnerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _labels(objects: list[DataObject]) -> list[tuple[int, Any]]:
    return [(o.index, o.label) for o in objects]


# -- the child ------------------------------------------------------------------------------------------------------
def _serve(conn: Any, task: TaskType, objects: list[DataObject]) -> None:
    learner = _Learner(task, objects)
    while True:
        try:
            method, args = conn.recv()
        except (EOFError, OSError):  # the job's runner closed the pipe, or the emulator is gone
            return
        try:
            reply = ("ok", getattr(learner, method)(*args))
        except Exception:  # noqa: BLE001 -- the traceback goes to the runner, which fails its job with it
            reply = ("error", traceback.format_exc())
        try:
            conn.send(reply)
        except (BrokenPipeError, OSError):
            return


class _Learner:
    def __init__(self, task: TaskType, objects: list[DataObject]) -> None:
        self.task = task
        self.objects = {o.index: o for o in objects}
        self.models: dict[int, Any] = {}
        self.loaded: set[int] = set()  # models given as a job's starting point: kept for the job's life
        self.next_handle = 1

    def _labeled(self, labels: list[tuple[int, Any]]) -> list[DataObject]:
        objects = []
        for index, label in labels:
            obj = self.objects[index]
            obj.label = label
            objects.append(obj)
        return objects

    def _keep(self, model: Any, loaded: bool = False) -> int:
        handle, self.next_handle = self.next_handle, self.next_handle + 1
        if not loaded:  # a round's model replaces the last round's: the runner uses the newest only
            self.models = {h: m for h, m in self.models.items() if h in self.loaded}
        else:
            self.loaded.add(handle)
        self.models[handle] = model
        return handle

    def train(self, training, validation, initial, seed):
        epochs: list[tuple[int, float]] = []
        model = self.task.train(
            self._labeled(training), self._labeled(validation), initial, seed, lambda e, s: epochs.append((e, s))
        )
        weights, model_format = self.task.model_bytes(model)
        return self._keep(model), epochs, weights, model_format

    def load_model(self, weights, meta):
        model = self.task.load_model(weights, meta)
        return self._keep(model, loaded=True), self.task.model_bytes(model)[1]

    def predict(self, handle, indices):
        return self.task.predict(self.models[handle], [self.objects[i] for i in indices])

    def calibrate(self, handle, validation, pending):
        return self.task.calibrate(self.models[handle], self._labeled(validation), pending)
