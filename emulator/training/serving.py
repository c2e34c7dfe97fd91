"""Model servers for batch transform: BlazingText in this process, script-mode models in a subprocess.

A script-mode model's code is found as the SageMaker Python SDK's framework models say: the module named by the
model's `SAGEMAKER_PROGRAM` environment variable inside the `SAGEMAKER_SUBMIT_DIRECTORY` tarball (an `s3://` URI, or
`/opt/ml/model/code`, i.e. the artifact's own `code/`), or else `code/inference.py` inside the artifact. It runs in
its own process group under `serving_worker.py`; a model that crashes or hangs fails its job, never the emulator.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from emulator.training.blazingtext import BlazingTextModel, RecordError, is_blazingtext_image
from emulator.training.data import DataError, S3Data, StorageError, safe_extract
from emulator.training.models import ModelRecord
from emulator.training.processes import reap, signal_group, spawn

WORKER = Path(__file__).with_name("serving_worker.py")
# The SDK repacks a framework model's code into the artifact and points SAGEMAKER_SUBMIT_DIRECTORY here.
CONTAINER_CODE_DIR = "/opt/ml/model/code"


class ServingError(Exception):
    """The model cannot be served or could not answer; the message is written for a FailureReason."""


class ModelServer(Protocol):
    def invoke(self, body: bytes, content_type: str, accept: str) -> bytes: ...

    def close(self) -> None: ...


class BlazingTextServer:
    def __init__(self, artifact: bytes, model: ModelRecord) -> None:
        try:
            self.model = BlazingTextModel.from_artifact(artifact)
        except ValueError as exc:
            raise ServingError(f"ClientError: model {model.name}: {exc}") from exc

    def invoke(self, body: bytes, content_type: str, accept: str) -> bytes:
        try:
            payload, _ = self.model.invoke(body, content_type, accept)
        except (RecordError, UnicodeDecodeError) as exc:
            raise ServingError(f"ClientError: the BlazingText model could not answer: {exc}") from exc
        return payload

    def close(self) -> None:
        pass


class ScriptModelServer:
    """`serving_worker.py` in a subprocess: one JSON line per request and per answer."""

    def __init__(
        self,
        model_dir: Path,
        code_dir: Path,
        module: str,
        env: dict[str, str],
        log: Callable[[str], None],
        stop: threading.Event,
        timeout: float,
    ) -> None:
        self.stop = stop
        self.timeout = timeout
        self.log = log
        self.stderr_tail: list[str] = []
        self.proc = spawn(
            # -I: the worker's own directory is not on sys.path, so the user's imports never meet emulator modules.
            [sys.executable, "-I", str(WORKER), str(model_dir), str(code_dir), module],
            cwd=code_dir,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.answers: queue.Queue[dict | None] = queue.Queue()
        threading.Thread(target=self._read_answers, daemon=True, name=f"model-server-{self.proc.pid}").start()
        threading.Thread(target=self._read_log, daemon=True, name=f"model-server-log-{self.proc.pid}").start()
        ready = self._answer("loading the model (model_fn)")
        if not ready.get("ok"):
            self.close()
            raise ServingError(f"ClientError: model_fn failed: {_last_line(ready.get('error', ''))}")

    def _read_answers(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.answers.put(json.loads(line))
            except json.JSONDecodeError:
                continue
        self.answers.put(None)  # the worker is gone

    def _read_log(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            self.stderr_tail = [*self.stderr_tail[-4:], line]
            self.log(line)

    def _answer(self, what: str) -> dict:
        waited = 0.0
        while True:
            try:
                answer = self.answers.get(timeout=0.05)
                break
            except queue.Empty:
                waited += 0.05
                if self.stop.is_set():
                    raise ServingError("stopped") from None
                if waited >= self.timeout:
                    self.close()
                    raise ServingError(
                        f"ClientError: the model server did not answer within {self.timeout:g} s while {what} "
                        "(ModelClientConfig.InvocationsTimeoutInSeconds)"
                    ) from None
        if answer is None:
            code = reap(self.proc)
            raise ServingError(
                f"ClientError: the model server exited with code {code} while {what}; "
                f"last log lines: {' | '.join(self.stderr_tail)}"
            )
        return answer

    def invoke(self, body: bytes, content_type: str, accept: str) -> bytes:
        request = {"body": base64.b64encode(body).decode(), "content_type": content_type, "accept": accept}
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the worker died; _answer reports how
        answer = self._answer("answering a request")
        if not answer.get("ok"):
            raise ServingError(f"ClientError: the model's inference code raised: {_last_line(answer.get('error', ''))}")
        return base64.b64decode(answer["body"])

    def close(self) -> None:
        if self.proc.returncode is None:
            signal_group(self.proc, signal.SIGKILL)
        reap(self.proc)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


def _last_line(error: str) -> str:
    lines = [line for line in error.strip().splitlines() if line.strip()]
    return " | ".join(lines[-3:]) if lines else "(no message)"


def open_server(
    model: ModelRecord,
    data: S3Data,
    workdir: Path,
    environment: dict[str, str],
    log: Callable[[str], None],
    stop: threading.Event,
    timeout: float,
) -> ModelServer:
    """A server for `model`, or ServingError naming the model and what is missing."""
    artifact = b""
    if model.model_data_url:
        try:
            artifact = data.read(model.model_data_url)
        except StorageError as exc:
            raise ServingError(f"ClientError: model {model.name}: cannot read ModelDataUrl: {exc}") from exc
    if is_blazingtext_image(model.image):
        if not artifact:
            raise ServingError(f"ClientError: BlazingText model {model.name} has no ModelDataUrl")
        return BlazingTextServer(artifact, model)

    model_dir, code_dir = workdir / "model", workdir / "code"
    model_dir.mkdir(parents=True)
    code_dir.mkdir(parents=True)
    try:
        if artifact:
            safe_extract(artifact, model_dir, f"model {model.name}'s ModelDataUrl {model.model_data_url}")
        env_program = model.environment.get("SAGEMAKER_PROGRAM", "")
        submit = model.environment.get("SAGEMAKER_SUBMIT_DIRECTORY", "")
        if env_program and submit.startswith("s3://"):
            try:
                safe_extract(data.read(submit), code_dir, f"SAGEMAKER_SUBMIT_DIRECTORY {submit}")
            except StorageError as exc:
                raise ServingError(f"ClientError: model {model.name}: cannot read {submit}: {exc}") from exc
        elif (model_dir / "code").is_dir() and (env_program or submit in ("", CONTAINER_CODE_DIR)):
            code_dir = model_dir / "code"
    except DataError as exc:
        raise ServingError(f"ClientError: {exc}") from exc
    program = env_program or "inference.py"
    if not (code_dir / program).is_file():
        raise ServingError(
            f"ClientError: model {model.name} (image {model.image}) is neither BlazingText nor a script-mode model: "
            f"no {program} found (SAGEMAKER_PROGRAM in SAGEMAKER_SUBMIT_DIRECTORY, or code/inference.py in the "
            "artifact)"
        )
    module = program[:-3] if program.endswith(".py") else program
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL") or k.startswith("OMP_")}
    env = {
        **base,
        **model.environment,
        **environment,
        "HOME": str(workdir),
        "SM_MODEL_DIR": str(model_dir),
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    return ScriptModelServer(model_dir, code_dir, module, env, log, stop, timeout)
