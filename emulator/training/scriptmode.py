"""Your own training script, under the SageMaker training toolkit's contract (sagemaker-training-toolkit).

The container contract is paths and variables, not an API: channels under `/opt/ml/input/data/<channel>`, the
configuration in `/opt/ml/input/config/{hyperparameters,inputdataconfig,resourceconfig}.json`, the model written to
`/opt/ml/model`, a failure reason to `/opt/ml/output/failure`, `SM_*` variables and `--key value` arguments. Here the
`/opt/ml` tree lives under a private temporary root (every path reaches the script through its `SM_*` variable), and
the script runs in its own process group with the emulator's Python, so a crash or a hang ends the job, never the
emulator.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emulator.training.processes import reap, signal_group, spawn

# Hyperparameters the SDK adds for the container itself; the user's script never sees them as arguments.
SAGEMAKER_PREFIX = "sagemaker_"
# Variables of the emulator's own process that a script may still need (BLAS threading pins, locale, PATH).
_INHERITED = ("PATH", "LANG", "LC_ALL", "TZ", "SYSTEMROOT")
_INHERITED_PREFIXES = ("OMP_", "OPENBLAS_", "MKL_", "NPY_")


def decode_hyperparameters(raw: dict[str, str]) -> dict[str, Any]:
    """The SDK JSON-encodes every value (`"\\"train.py\\""`, `"10"`); bare strings stay strings, as the toolkit
    reads them."""
    decoded = {}
    for key, value in raw.items():
        try:
            decoded[key] = json.loads(value)
        except (TypeError, ValueError):
            decoded[key] = value
    return decoded


def user_hyperparameters(decoded: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in decoded.items() if not k.startswith(SAGEMAKER_PREFIX)}


def _arg_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value) if isinstance(value, dict | list) else str(value)


def to_cmd_args(hyperparameters: dict[str, Any]) -> list[str]:
    """`--key value` for each hyperparameter, sorted by key as the toolkit does."""
    args: list[str] = []
    for key in sorted(hyperparameters):
        args += [f"--{key}", _arg_value(hyperparameters[key])]
    return args


def _env_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


@dataclass
class TrainingEnvironment:
    """The `/opt/ml` tree of one training job under `root`, and the variables that point into it."""

    root: Path
    job_name: str
    hyperparameters: dict[str, str]  # as sent: every value a string
    input_data_config: dict[str, dict]
    resource_config: dict[str, Any]
    environment: dict[str, str]
    module_dir: str = ""

    @property
    def input_dir(self) -> Path:
        return self.root / "input"

    @property
    def config_dir(self) -> Path:
        return self.input_dir / "config"

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def output_dir(self) -> Path:
        return self.root / "output"

    @property
    def output_data_dir(self) -> Path:
        return self.output_dir / "data"

    @property
    def code_dir(self) -> Path:
        return self.root / "code"

    def channel_dir(self, channel: str) -> Path:
        return self.input_dir / "data" / channel

    def create(self) -> None:
        for path in (self.config_dir, self.model_dir, self.output_data_dir, self.code_dir, self.output_dir / "tmp"):
            path.mkdir(parents=True, exist_ok=True)
        for channel in self.input_data_config:
            self.channel_dir(channel).mkdir(parents=True, exist_ok=True)
        self._write_json("hyperparameters.json", self.hyperparameters)
        self._write_json("inputdataconfig.json", self.input_data_config)
        self._write_json("resourceconfig.json", self.resource_config)

    def _write_json(self, name: str, data: Any) -> None:
        (self.config_dir / name).write_text(json.dumps(data, indent=2))

    @property
    def decoded(self) -> dict[str, Any]:
        return decode_hyperparameters(self.hyperparameters)

    @property
    def entry_point(self) -> str:
        program = self.decoded.get(f"{SAGEMAKER_PREFIX}program")
        return str(program) if program else ""

    def variables(self) -> dict[str, str]:
        """The SM_* variables of the training toolkit (plus the request's own Environment)."""
        hps = user_hyperparameters(self.decoded)
        channels = sorted(self.input_data_config)
        entry = self.entry_point
        module_name = entry[:-3] if entry.endswith(".py") else entry
        cpus = os.cpu_count() or 1
        env = {
            "SM_MODEL_DIR": str(self.model_dir),
            "SM_INPUT_DIR": str(self.input_dir),
            "SM_INPUT_CONFIG_DIR": str(self.config_dir),
            "SM_OUTPUT_DIR": str(self.output_dir),
            "SM_OUTPUT_DATA_DIR": str(self.output_data_dir),
            "SM_OUTPUT_INTERMEDIATE_DIR": str(self.output_dir / "intermediate"),
            "SM_CHANNELS": json.dumps(channels),
            "SM_HPS": json.dumps(hps),
            "SM_USER_ARGS": json.dumps(to_cmd_args(hps)),
            "SM_HOSTS": json.dumps(["algo-1"]),
            "SM_CURRENT_HOST": "algo-1",
            "SM_NETWORK_INTERFACE_NAME": "eth0",
            "SM_NUM_CPUS": str(cpus),
            "SM_NUM_GPUS": "0",
            "SM_NUM_NEURONS": "0",
            "SM_MODULE_NAME": module_name,
            "SM_MODULE_DIR": self.module_dir,
            "SM_USER_ENTRY_POINT": entry,
            "SM_LOG_LEVEL": str(self.decoded.get(f"{SAGEMAKER_PREFIX}container_log_level", 20)),
            "SM_INPUT_DATA_CONFIG": json.dumps(self.input_data_config),
            "SM_RESOURCE_CONFIG": json.dumps(self.resource_config),
            "SM_CURRENT_INSTANCE_TYPE": str(self.resource_config.get("current_instance_type", "")),
            "SM_TRAINING_ENV": json.dumps(
                {
                    "job_name": self.job_name,
                    "channel_input_dirs": {c: str(self.channel_dir(c)) for c in channels},
                    "hyperparameters": hps,
                    "model_dir": str(self.model_dir),
                    "output_dir": str(self.output_dir),
                    "output_data_dir": str(self.output_data_dir),
                    "input_dir": str(self.input_dir),
                    "input_config_dir": str(self.config_dir),
                    "hosts": ["algo-1"],
                    "current_host": "algo-1",
                    "num_cpus": cpus,
                    "num_gpus": 0,
                    "module_name": module_name,
                    "module_dir": self.module_dir,
                    "user_entry_point": entry,
                }
            ),
            "TRAINING_JOB_NAME": self.job_name,
        }
        for channel in channels:
            env[f"SM_CHANNEL_{channel.upper()}"] = str(self.channel_dir(channel))
        for key, value in hps.items():
            env[f"SM_HP_{key.upper()}"] = _env_value(value)
        return {**self.environment, **env}

    def command(self) -> list[str]:
        entry = self.entry_point
        args = to_cmd_args(user_hyperparameters(self.decoded))
        if entry.endswith(".sh"):
            return ["/bin/sh", entry, *args]
        return [sys.executable, entry, *args]

    def process_env(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if k in _INHERITED or k.startswith(_INHERITED_PREFIXES)}
        return {
            **base,
            "HOME": str(self.root),
            "TMPDIR": str(self.output_dir / "tmp"),
            "PYTHONPATH": str(self.code_dir),
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            **self.variables(),
        }

    def failure_reason(self) -> str:
        path = self.output_dir / "failure"
        if not path.is_file():
            return ""
        return path.read_text(errors="replace").strip()


@dataclass
class ProcessOutcome:
    exit_code: int | None
    ended_by: str  # "exit" | "stop" | "max_runtime"
    wall_seconds: float


def run_process(
    command: list[str],
    cwd: Path,
    env: dict[str, str],
    on_line: Callable[[str], None],
    stop: threading.Event,
    max_wall_seconds: float,
    grace_seconds: float,
) -> ProcessOutcome:
    """Run `command` in its own process group, stdout and stderr line by line to `on_line`, until it exits, `stop`
    is set or `max_wall_seconds` pass; then SIGTERM the group, and SIGKILL it after `grace_seconds`."""
    started = time.monotonic()
    proc = spawn(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    exited = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for raw in iter(proc.stdout.readline, b""):
            on_line(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
        proc.stdout.close()
        reap(proc)
        exited.set()

    reader = threading.Thread(target=pump, name=f"script-output-{proc.pid}", daemon=True)
    reader.start()
    ended_by = "exit"
    deadline = started + max_wall_seconds
    while not exited.is_set():
        # Wake for whichever comes first: the process ends, a stop is requested, or the runtime runs out.
        if stop.wait(timeout=min(0.05, max(0.0, deadline - time.monotonic()))):
            ended_by = "stop"
        elif time.monotonic() >= deadline:
            ended_by = "max_runtime"
        else:
            continue
        if not exited.is_set():
            _terminate(proc, exited, grace_seconds)
        break
    reader.join(timeout=grace_seconds + 5)
    return ProcessOutcome(proc.poll(), ended_by, time.monotonic() - started)


def _terminate(proc: subprocess.Popen, exited: threading.Event, grace_seconds: float) -> None:
    """SIGTERM the whole group (the service does the same and then waits), SIGKILL it after the grace."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if exited.is_set() or not signal_group(proc, sig):
            return
        if exited.wait(timeout=grace_seconds):
            return
