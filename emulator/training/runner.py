"""One training job's life: Starting → Downloading → Training → Uploading → Completed, or Failed / Stopped.

Two kinds of job run for real: BlazingText (the per-region `blazingtext` images, `mode supervised`) in this process,
and script mode (any image with the `sagemaker_program` and `sagemaker_submit_directory` hyperparameters) in a
subprocess under the training toolkit's contract. The modelled phases (instances starting, data downloading, the
artifact uploading) pass on the simulated clock; the training itself takes the wall time it really takes, counted
1:1 on the job's clock and against `StoppingCondition.MaxRuntimeInSeconds`. The runner asks the job to move; the job
decides (a stop that arrived meanwhile wins).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import tempfile
import threading
import time
from collections import deque
from pathlib import Path

from emulator.clock import SimClock
from emulator.faults import FaultInjector
from emulator.labeling.storage import Storage
from emulator.training import blazingtext
from emulator.training.data import DataError, S3Data, StorageError, safe_extract, safe_path, tar_directory
from emulator.training.models import TrainingJob
from emulator.training.scriptmode import SAGEMAKER_PREFIX, TrainingEnvironment, decode_hyperparameters, run_process

log = logging.getLogger("emulator.training")

TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"
STARTING_SECONDS = 90.0  # instances launched and the image pulled
DOWNLOAD_SECONDS = 10.0
UPLOAD_SECONDS = 5.0
BYTES_PER_SECOND = 50e6  # S3 to and from an ML volume
LOG_LINES_IN_REASON = 5
# What the service waits between SIGTERM and SIGKILL when it stops a job (120 s), on the simulated clock, but at
# least a second of wall time so a script that saves on SIGTERM gets the chance.
STOP_GRACE_SECONDS = 120.0


class JobFailed(Exception):
    """The job cannot go on; the message becomes its FailureReason."""


class JobStopped(Exception):
    """StopTrainingJob was called (or MaxRuntimeInSeconds passed) before the training started."""


class JobLog:
    """A training job's CloudWatch Logs stream `<job>/algo-1-<epoch>`: lines stamped on the job's clock, sent as
    they come, the last few kept for a FailureReason."""

    def __init__(self, storage: Storage, job: TrainingJob, group: str = TRAINING_LOG_GROUP) -> None:
        self.storage = storage
        self.job = job
        self.group = group
        self.stream = f"{job.name}/algo-1-{int(job.now())}"
        self.tail: deque[str] = deque(maxlen=LOG_LINES_IN_REASON)
        self._pending: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._wall_origin: float | None = None
        self._sim_origin = 0.0

    def measure_from_now(self) -> None:
        """Stamp the next lines with the job's time plus the wall time since now (a real process is running)."""
        self._wall_origin, self._sim_origin = time.monotonic(), self.job.now()

    def _stamp(self) -> float:
        if self._wall_origin is None:
            return self.job.now()
        return max(self.job.now(), self._sim_origin + time.monotonic() - self._wall_origin)

    def line(self, message: str) -> None:
        """Append one line; it is in CloudWatch Logs when this returns (a running job's log is live)."""
        with self._lock:
            if message.strip():
                self.tail.append(message)
            self._pending.append((self._stamp(), message))
        self.flush()

    def flush(self) -> None:
        with self._lock:
            events, self._pending = self._pending, []
        if events:
            self.storage.put_log_events(self.job.region, self.group, self.stream, events)

    def tail_text(self) -> str:
        return " | ".join(self.tail)


class MetricScraper:
    """`AlgorithmSpecification.MetricDefinitions` as the service applies them to a script's log: each regex's first
    group, read as a number; the last value of each metric is its final one (`FinalMetricDataList`)."""

    def __init__(self, definitions: list[dict]) -> None:
        self.patterns = []
        for definition in definitions:
            try:
                self.patterns.append((definition["Name"], re.compile(definition["Regex"])))
            except (KeyError, TypeError, re.error) as exc:
                raise JobFailed(f"ClientError: MetricDefinitions entry {definition!r} is not usable: {exc}") from None
        self.values: dict[str, float] = {}

    def scan(self, line: str) -> None:
        for name, pattern in self.patterns:
            match = pattern.search(line)
            if match and match.groups():
                with contextlib.suppress(ValueError):
                    self.values[name] = float(match.group(1))


class TrainingRunner:
    def __init__(
        self, job: TrainingJob, clock: SimClock, faults: FaultInjector, storage: Storage | None = None
    ) -> None:
        self.job = job
        self.clock = clock
        self.faults = faults
        self.storage = storage or Storage(job.account_id)
        self.data = S3Data(self.storage)
        self.request = job.request
        self.raw_hyperparameters: dict[str, str] = dict(self.request.get("HyperParameters") or {})
        self.log = JobLog(self.storage, job)
        self.max_runtime = float(self.request["StoppingCondition"].get("MaxRuntimeInSeconds", 86400))
        self.output_base = self.request["OutputDataConfig"]["S3OutputPath"].rstrip("/") + f"/{job.name}/output"

    # -- the life ------------------------------------------------------------------------------------------------
    def run(self) -> None:
        try:
            kind = self._kind()
            self._inject("starting")
            self._wait(STARTING_SECONDS)
            with tempfile.TemporaryDirectory(prefix=f"sm-training-{self.job.name}-") as root:
                if kind == "blazingtext":
                    self._run_blazingtext()
                else:
                    self._run_script(Path(root))
        except JobStopped:
            self.job.stopped()
        except JobFailed as failure:
            self.job.fail(str(failure))
        except Exception as exc:  # an emulator bug: the job fails with a reason instead of hanging forever
            log.exception("training job %s crashed", self.job.name)
            self.job.fail(f"InternalServerError: {type(exc).__name__}: {exc}")
        finally:
            self.log.flush()
        log.info("training job %s %s %s", self.job.name, self.job.status, self.job.failure_reason or "")

    def _kind(self) -> str:
        image = self.request["AlgorithmSpecification"].get("TrainingImage", "")
        if blazingtext.is_blazingtext_image(image):
            return "blazingtext"
        decoded = decode_hyperparameters(self.raw_hyperparameters)
        if decoded.get(f"{SAGEMAKER_PREFIX}program") and decoded.get(f"{SAGEMAKER_PREFIX}submit_directory"):
            return "script"
        raise JobFailed(
            f"ClientError: the emulator runs BlazingText images and script-mode jobs (hyperparameters "
            f"sagemaker_program and sagemaker_submit_directory); training image {image or '(none)'!r} is neither"
        )

    def _wait(self, sim_seconds: float) -> None:
        if self.job.wait(self.clock, sim_seconds):
            raise JobStopped

    def _enter(self, secondary: str, message: str) -> None:
        if not self.job.enter(secondary, message):
            raise JobStopped

    def _inject(self, stage: str) -> None:
        if self.faults.job_failure_point(self.job.name, kind="training") == stage:
            raise JobFailed(f"InternalServerError: injected failure during {stage} (emulator fault rule)")

    def _channels(self) -> dict[str, dict]:
        return {c["ChannelName"]: c for c in self.request.get("InputDataConfig") or []}

    def _upload(self, files: dict[str, bytes] | Path, stopping: bool = False) -> str:
        """model.tar.gz (from a directory or from named payloads) to `<S3OutputPath>/<job>/output/`; a job that is
        stopping already uploads without waiting for the stop it has been told about."""
        if isinstance(files, Path):
            payload = tar_directory(files)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                for name, data in files.items():
                    (Path(tmp) / name).write_bytes(data)
                payload = tar_directory(Path(tmp))
        uri = f"{self.output_base}/model.tar.gz"
        try:
            self.data.write(uri, payload)
        except StorageError as exc:
            raise JobFailed(f"ClientError: cannot upload the model artifact: {exc}") from exc
        if stopping:
            self.job.advance(UPLOAD_SECONDS + len(payload) / BYTES_PER_SECOND)
        else:
            self._wait(UPLOAD_SECONDS + len(payload) / BYTES_PER_SECOND)
        return uri

    def _finish_training(self, wall_seconds: float) -> None:
        self.job.advance(wall_seconds)

    # -- BlazingText ---------------------------------------------------------------------------------------------
    def _run_blazingtext(self) -> None:
        self._enter("Downloading", "Downloading input data")
        self._inject("downloading")
        channels = self._channels()
        if "train" not in channels:
            raise JobFailed("ClientError: BlazingText supervised mode needs a train channel")
        unknown = sorted(set(channels) - {"train", "validation"})
        if unknown:
            raise JobFailed(f"ClientError: BlazingText supervised mode reads train and validation, not {unknown}")
        try:
            training = blazingtext.read_channel(self.data, "train", channels["train"])
            validation = (
                blazingtext.read_channel(self.data, "validation", channels["validation"])
                if "validation" in channels
                else None
            )
        except (DataError, StorageError) as exc:
            raise JobFailed(f"ClientError: {exc}") from exc
        size = sum(len(t) for t in training.texts) + (sum(len(t) for t in validation.texts) if validation else 0)
        self._wait(DOWNLOAD_SECONDS + size / BYTES_PER_SECOND)

        self._enter("Training", "Training image download completed. Training in progress.")
        self._inject("training")
        self.log.measure_from_now()
        started = time.monotonic()

        def should_stop() -> bool:
            return self.job.stop_requested.is_set() or time.monotonic() - started >= self.max_runtime

        try:
            trained = blazingtext.train(self.raw_hyperparameters, training, validation, self.log.line, should_stop)
        except blazingtext.TrainingInterrupted:
            self._finish_training(time.monotonic() - started)
            self.log.line("Training interrupted")
            self.job.stopped(max_runtime_exceeded=not self.job.stop_requested.is_set())
            return
        except ValueError as exc:
            self._finish_training(time.monotonic() - started)
            raise JobFailed(f"ClientError: {exc}") from exc
        self._finish_training(time.monotonic() - started)
        self.job.record_metrics(trained.metrics)

        self._enter("Uploading", "Uploading generated training model")
        self._inject("uploading")
        self.job.complete(self._upload(trained.artifact_files))

    # -- script mode ---------------------------------------------------------------------------------------------
    def _run_script(self, root: Path) -> None:
        resource = self.request["ResourceConfig"]
        env = TrainingEnvironment(
            root=root,
            job_name=self.job.name,
            hyperparameters=self.raw_hyperparameters,
            input_data_config={name: self._channel_config(c) for name, c in self._channels().items()},
            resource_config={
                "current_host": "algo-1",
                "current_instance_type": resource.get("InstanceType", ""),
                "current_group_name": "homogeneousCluster",
                "hosts": ["algo-1"],
                "instance_groups": [
                    {
                        "instance_group_name": "homogeneousCluster",
                        "instance_type": resource.get("InstanceType", ""),
                        "hosts": ["algo-1"],
                    }
                ],
                "network_interface_name": "eth0",
            },
            environment=dict(self.request.get("Environment") or {}),
        )
        env.module_dir = str(env.decoded[f"{SAGEMAKER_PREFIX}submit_directory"])
        env.create()

        self._enter("Downloading", "Downloading input data")
        self._inject("downloading")
        size = self._download_code(env) + self._download_channels(env)
        self._wait(DOWNLOAD_SECONDS + size / BYTES_PER_SECOND)

        self._enter("Training", "Training image download completed. Training in progress.")
        self._inject("training")
        entry = env.entry_point
        try:
            entry_path = safe_path(env.code_dir, entry)
        except DataError as exc:
            raise JobFailed(f"ClientError: sagemaker_program {entry!r}: {exc}") from exc
        if not entry_path.is_file():
            raise JobFailed(
                f"ClientError: the entry point {entry!r} (sagemaker_program) is not in {env.module_dir} "
                "(sagemaker_submit_directory)"
            )
        command = env.command()
        self.log.line(f"Invoking script with the following command: {' '.join(command[1:])}")
        self.log.measure_from_now()
        grace = max(1.0, STOP_GRACE_SECONDS / self.clock.scale)
        metrics = MetricScraper(self.request["AlgorithmSpecification"].get("MetricDefinitions") or [])

        def on_line(line: str) -> None:
            self.log.line(line)
            metrics.scan(line)

        outcome = run_process(
            command,
            cwd=env.code_dir,
            env=env.process_env(),
            on_line=on_line,
            stop=self.job.stop_requested,
            max_wall_seconds=self.max_runtime,
            grace_seconds=grace,
        )
        self._finish_training(outcome.wall_seconds)
        if outcome.ended_by in ("stop", "max_runtime"):
            if outcome.ended_by == "max_runtime":
                self.log.line(f"MaxRuntimeInSeconds ({self.max_runtime:g} s) exceeded: the job was stopped")
            # As on the service, what the script saved to the model directory before it ended is still uploaded.
            artifact = self._upload(env.model_dir, stopping=True) if any(env.model_dir.iterdir()) else None
            self.job.stopped(max_runtime_exceeded=outcome.ended_by == "max_runtime", artifact=artifact)
            return
        failure = env.failure_reason()
        if outcome.exit_code != 0 or failure:
            reason = self._failure_reason(failure, outcome.exit_code, command)
            self.log.line(f"Reporting training FAILURE (exit code {outcome.exit_code})")
            raise JobFailed(reason)
        self.log.line("Reporting training SUCCESS")
        if metrics.values:
            self.job.record_metrics(metrics.values)

        self._enter("Uploading", "Uploading generated training model")
        self._inject("uploading")
        artifact = self._upload(env.model_dir)
        if any(env.output_data_dir.iterdir()):
            self.data.write(f"{self.output_base}/output.tar.gz", tar_directory(env.output_data_dir))
        self.job.complete(artifact)

    def _channel_config(self, channel: dict) -> dict[str, str]:
        """A channel as `inputdataconfig.json` describes it to the script."""
        source = channel["DataSource"].get("S3DataSource", {})
        config = {
            "TrainingInputMode": channel.get("InputMode")
            or self.request["AlgorithmSpecification"].get("TrainingInputMode", "File"),
            "S3DistributionType": source.get("S3DataDistributionType", "FullyReplicated"),
            "RecordWrapperType": channel.get("RecordWrapperType", "None"),
        }
        if "ContentType" in channel:
            config["ContentType"] = channel["ContentType"]
        return config

    def _failure_reason(self, failure: str, exit_code: int | None, command: list[str]) -> str:
        shown = " ".join([Path(command[0]).name, *command[1:]])
        if failure:
            return f"AlgorithmError: {failure} (exit code {exit_code}); last log lines: {self.log.tail_text()}"
        message = self.log.tail[-1].strip() if self.log.tail else ""
        return (
            f'AlgorithmError: ExecuteUserScriptError: ExitCode {exit_code}, ErrorMessage "{message}", '
            f'Command "{shown}"; last log lines: {self.log.tail_text()}'
        )

    def _download_code(self, env: TrainingEnvironment) -> int:
        uri = env.module_dir
        try:
            tarball = self.data.read(uri)
        except StorageError as exc:
            raise JobFailed(f"ClientError: cannot read sagemaker_submit_directory {uri}: {exc}") from exc
        try:
            safe_extract(tarball, env.code_dir, f"sagemaker_submit_directory {uri}")
        except DataError as exc:
            raise JobFailed(f"ClientError: {exc}") from exc
        return len(tarball)

    def _download_channels(self, env: TrainingEnvironment) -> int:
        size = 0
        for name, channel in self._channels().items():
            source = channel.get("DataSource", {}).get("S3DataSource")
            if not source:
                raise JobFailed(f"ClientError: channel {name}: only S3DataSource is supported by the emulator")
            target = env.channel_dir(name)
            try:
                if source.get("S3DataType") == "AugmentedManifestFile":
                    # The records, cut to AttributeNames, as one JSON Lines file named after the manifest.
                    records = self.data.augmented_manifest(
                        source["S3Uri"], source.get("AttributeNames") or [], f"channel {name}"
                    )
                    text = "".join(_json_line(r) for r in records)
                    path = safe_path(target, source["S3Uri"].rsplit("/", 1)[-1] or "manifest")
                    path.write_text(text)
                    size += len(text)
                    continue
                for relative, uri in self.data.objects(source, f"channel {name}"):
                    payload = self.data.read(uri)
                    path = safe_path(target, relative)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(payload)
                    size += len(payload)
            except (DataError, StorageError) as exc:
                raise JobFailed(f"ClientError: {exc}") from exc
        return size


def _json_line(record: dict) -> str:
    return json.dumps(record) + "\n"
