"""Training jobs, models and batch-transform jobs: records, their transitions, and the backends behind the API.

No HTTP here (responses.py translates the wire format) and no running here (runner.py and transform.py run a job's
life and ask the job to move; the job owns its status fields). Models live in moto's SageMaker backend, the one
registry every part of the emulator reads (labeling jobs register their final model there too); what moto lacks,
refusing a duplicate name, is added in `ModelBackend.create`.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from moto.sagemaker.models import sagemaker_backends

from emulator import DEFAULT_ACCOUNT_ID
from emulator.clock import SimClock
from emulator.errors import ApiError, in_use, not_found, validation_error

TERMINAL = ("Completed", "Failed", "Stopped")
# The service caps FailureReason at 1,024 characters.
MAX_FAILURE_REASON = 1024


def _clip(reason: str) -> str:
    return reason if len(reason) <= MAX_FAILURE_REASON else reason[: MAX_FAILURE_REASON - 1] + "…"


@dataclass
class _Job:
    """What training and transform jobs share: a name, a request, a simulated clock of their own, a stop flag."""

    name: str
    region: str
    request: dict
    created_at: float
    account_id: str = DEFAULT_ACCOUNT_ID
    status: str = "InProgress"
    failure_reason: str | None = None
    # Simulated seconds since creation: the job's own clock, which drives every timestamp it reports.
    elapsed: float = 0.0
    ended_at: float | None = None
    stop_requested: threading.Event = field(default_factory=threading.Event)
    lock: threading.RLock = field(default_factory=threading.RLock)

    kind = ""  # ARN resource type

    @property
    def arn(self) -> str:
        return f"arn:aws:sagemaker:{self.region}:{self.account_id}:{self.kind}/{self.name.lower()}"

    def now(self) -> float:
        return self.created_at + self.elapsed

    @property
    def last_modified(self) -> float:
        return self.now()

    def advance(self, sim_seconds: float) -> None:
        """Simulated (or measured) time passed for this job."""
        with self.lock:
            self.elapsed += max(0.0, sim_seconds)

    def wait(self, clock: SimClock, sim_seconds: float) -> bool:
        """Let `sim_seconds` pass on the simulated clock; True if a stop was requested meanwhile."""
        interrupted = clock.wait(sim_seconds, self.stop_requested)
        if not interrupted:
            self.advance(sim_seconds)
        return interrupted

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


@dataclass
class TrainingJob(_Job):
    kind = "training-job"
    secondary_status: str = "Starting"
    transitions: list[dict[str, Any]] = field(default_factory=list)
    training_started_at: float | None = None
    model_artifact: str | None = None
    final_metrics: list[dict[str, Any]] = field(default_factory=list)
    tags: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.transitions.append(
            {
                "Status": "Starting",
                "StartTime": self.created_at,
                "StatusMessage": "Preparing the instances for training",
            }
        )

    # -- transitions (the runner asks; the job decides) -------------------------------------------------------
    def _enter(self, secondary: str, message: str) -> None:
        now = self.now()
        if self.transitions and "EndTime" not in self.transitions[-1]:
            self.transitions[-1]["EndTime"] = now
        self.transitions.append({"Status": secondary, "StartTime": now, "StatusMessage": message})
        self.secondary_status = secondary

    def enter(self, secondary: str, message: str) -> bool:
        """Move to an InProgress secondary status; False if the job is no longer running (stopping or ended)."""
        if secondary not in ("Downloading", "Training", "Uploading"):
            raise ValueError(f"training job {self.name}: {secondary} is not an InProgress secondary status")
        with self.lock:
            if self.status != "InProgress":
                return False
            if secondary == "Training" and self.training_started_at is None:
                self.training_started_at = self.now()
            self._enter(secondary, message)
            return True

    def record_metrics(self, metrics: dict[str, float]) -> None:
        with self.lock:
            self.final_metrics = [
                {"MetricName": name, "Value": float(value), "Timestamp": self.now()} for name, value in metrics.items()
            ]

    def complete(self, artifact: str) -> None:
        with self.lock:
            if self.status == "Stopping":
                # A stop that arrived while the artifact was being uploaded: the job still ends Stopped, with it.
                self.model_artifact = artifact
                self._end("Stopped", "Stopped", "The training job was stopped")
                return
            if self.status != "InProgress":
                return
            self.model_artifact = artifact
            self._end("Completed", "Completed", "Training job completed")

    def fail(self, reason: str) -> None:
        with self.lock:
            if self.terminal:
                return
            self.failure_reason = _clip(reason)
            self._end("Failed", "Failed", self.failure_reason)

    def stopped(self, max_runtime_exceeded: bool = False, artifact: str | None = None) -> None:
        with self.lock:
            if self.terminal:
                return
            if artifact:
                self.model_artifact = artifact
            if max_runtime_exceeded:
                self._end("Stopped", "MaxRuntimeExceeded", "The job stopped because it exceeded MaxRuntimeInSeconds")
            else:
                self._end("Stopped", "Stopped", "The training job was stopped")

    def request_stop(self) -> None:
        with self.lock:
            if self.terminal or self.status == "Stopping":
                return  # stopping a finished job is a no-op, as on the service
            self.status = "Stopping"
            self._enter("Stopping", "Stopping the training job")
        self.stop_requested.set()

    def _end(self, status: str, secondary: str, message: str) -> None:
        self.status = status
        self.ended_at = self.now()
        self._enter(secondary, message)
        self.transitions[-1]["EndTime"] = self.ended_at

    # -- views ------------------------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        with self.lock:
            req = self.request
            desc: dict[str, Any] = {
                "TrainingJobName": self.name,
                "TrainingJobArn": self.arn,
                "TrainingJobStatus": self.status,
                "SecondaryStatus": self.secondary_status,
                "AlgorithmSpecification": copy.deepcopy(req["AlgorithmSpecification"]),
                "RoleArn": req["RoleArn"],
                "OutputDataConfig": copy.deepcopy(req["OutputDataConfig"]),
                "ResourceConfig": copy.deepcopy(req["ResourceConfig"]),
                "StoppingCondition": copy.deepcopy(req["StoppingCondition"]),
                "CreationTime": self.created_at,
                "LastModifiedTime": self.last_modified,
                "SecondaryStatusTransitions": copy.deepcopy(self.transitions),
                "ModelArtifacts": {"S3ModelArtifacts": self.model_artifact or ""},
                "EnableNetworkIsolation": bool(req.get("EnableNetworkIsolation", False)),
                "EnableInterContainerTrafficEncryption": bool(req.get("EnableInterContainerTrafficEncryption", False)),
                "EnableManagedSpotTraining": bool(req.get("EnableManagedSpotTraining", False)),
            }
            for key in ("HyperParameters", "InputDataConfig", "VpcConfig", "Environment", "CheckpointConfig"):
                if key in req:
                    desc[key] = copy.deepcopy(req[key])
            if self.training_started_at is not None:
                desc["TrainingStartTime"] = self.training_started_at
            if self.ended_at is not None:
                desc["TrainingEndTime"] = self.ended_at
                started = self.training_started_at if self.training_started_at is not None else self.ended_at
                desc["TrainingTimeInSeconds"] = round(self.ended_at - started)
                desc["BillableTimeInSeconds"] = desc["TrainingTimeInSeconds"]
            if self.final_metrics:
                desc["FinalMetricDataList"] = copy.deepcopy(self.final_metrics)
            if self.failure_reason:
                desc["FailureReason"] = self.failure_reason
            return desc

    def summary(self) -> dict[str, Any]:
        with self.lock:
            summary = {
                "TrainingJobName": self.name,
                "TrainingJobArn": self.arn,
                "CreationTime": self.created_at,
                "LastModifiedTime": self.last_modified,
                "TrainingJobStatus": self.status,
                "SecondaryStatus": self.secondary_status,
            }
            if self.ended_at is not None:
                summary["TrainingEndTime"] = self.ended_at
            return summary


@dataclass
class TransformJob(_Job):
    kind = "transform-job"
    started_at: float | None = None
    model: ModelRecord | None = None
    tags: list[dict[str, str]] = field(default_factory=list)

    def start(self) -> bool:
        with self.lock:
            if self.status != "InProgress":
                return False
            self.started_at = self.now()
            return True

    def complete(self) -> None:
        with self.lock:
            if self.status == "Stopping":
                self._end("Stopped")
            elif self.status == "InProgress":
                self._end("Completed")

    def fail(self, reason: str) -> None:
        with self.lock:
            if self.terminal:
                return
            self.failure_reason = _clip(reason)
            self._end("Failed")

    def stopped(self) -> None:
        with self.lock:
            if not self.terminal:
                self._end("Stopped")

    def request_stop(self) -> None:
        with self.lock:
            if self.terminal or self.status == "Stopping":
                return
            self.status = "Stopping"
        self.stop_requested.set()

    def _end(self, status: str) -> None:
        self.status = status
        self.ended_at = self.now()

    def describe(self) -> dict[str, Any]:
        with self.lock:
            req = self.request
            desc: dict[str, Any] = {
                "TransformJobName": self.name,
                "TransformJobArn": self.arn,
                "TransformJobStatus": self.status,
                "ModelName": req["ModelName"],
                "TransformInput": copy.deepcopy(req["TransformInput"]),
                "TransformOutput": copy.deepcopy(req["TransformOutput"]),
                "TransformResources": copy.deepcopy(req["TransformResources"]),
                "CreationTime": self.created_at,
            }
            for key in (
                "MaxConcurrentTransforms",
                "ModelClientConfig",
                "MaxPayloadInMB",
                "BatchStrategy",
                "Environment",
                "DataProcessing",
                "DataCaptureConfig",
                "ExperimentConfig",
            ):
                if key in req:
                    desc[key] = copy.deepcopy(req[key])
            if self.started_at is not None:
                desc["TransformStartTime"] = self.started_at
            if self.ended_at is not None:
                desc["TransformEndTime"] = self.ended_at
            if self.failure_reason:
                desc["FailureReason"] = self.failure_reason
            return desc

    def summary(self) -> dict[str, Any]:
        with self.lock:
            summary = {
                "TransformJobName": self.name,
                "TransformJobArn": self.arn,
                "CreationTime": self.created_at,
                "LastModifiedTime": self.last_modified,
                "TransformJobStatus": self.status,
            }
            if self.ended_at is not None:
                summary["TransformEndTime"] = self.ended_at
            if self.failure_reason:
                summary["FailureReason"] = self.failure_reason
            return summary


class _JobBackend:
    """The jobs of one kind, per region, each run by `run_job` (given by the composition root) in its own thread."""

    noun = ""

    def __init__(self, clock: SimClock, run_job: Callable[[Any, SimClock], None] | None = None) -> None:
        self.clock = clock
        self.run_job = run_job
        self._jobs: dict[tuple[str, str], Any] = {}  # (region, lowercased name) -> job
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    def _add(self, job: Any) -> Any:
        with self._lock:
            if (job.region, job.name.lower()) in self._jobs:
                raise in_use(
                    f"{self.noun.capitalize()} names must be unique within an AWS account and region, and a "
                    f"{self.noun} with this name already exists ({job.arn})"
                )
            self._jobs[(job.region, job.name.lower())] = job
        if self.run_job is not None:
            thread = threading.Thread(
                target=self.run_job, args=(job, self.clock), name=f"{job.kind}-{job.name}", daemon=True
            )
            self._threads[job.arn] = thread
            thread.start()
        return job

    def get(self, region: str, name: str) -> Any:
        with self._lock:
            job = self._jobs.get((region, name.lower()))
        if job is None:
            # DescribeTrainingJob/DescribeTransformJob answer a missing name with ValidationException (the Amazon
            # provider's existence checks rely on that code), not the ResourceNotFound botocore lists.
            raise validation_error(f"Requested resource not found: no {self.noun} named {name}")
        return job

    def by_arn(self, arn: str) -> Any:
        with self._lock:
            return next((job for job in self._jobs.values() if job.arn == arn.lower() or job.arn == arn), None)

    def stop(self, region: str, name: str) -> None:
        try:
            job = self.get(region, name)
        except ApiError:
            raise not_found(f"Requested resource not found: no {self.noun} named {name}") from None
        job.request_stop()

    def list(self, region: str, body: dict) -> tuple[list[Any], str | None]:
        with self._lock:
            jobs = [job for (r, _), job in self._jobs.items() if r == region]
        return page(jobs, body, status_of=lambda job: job.status)

    def join(self, name: str | None = None, timeout: float | None = None) -> None:
        """Wait for one job's thread, or every job's (tests and clean shutdown)."""
        for arn, thread in list(self._threads.items()):
            if name is None or arn.rsplit("/", 1)[-1] == name.lower():
                thread.join(timeout)


class TrainingBackend(_JobBackend):
    noun = "training job"

    def create(self, region: str, request: dict) -> TrainingJob:
        job = TrainingJob(
            name=request["TrainingJobName"],
            region=region,
            request=copy.deepcopy(request),
            created_at=time.time(),
            tags=copy.deepcopy(request.get("Tags", [])),
        )
        return self._add(job)


class TransformBackend(_JobBackend):
    noun = "transform job"

    def __init__(
        self, clock: SimClock, models: ModelBackend, run_job: Callable[[Any, SimClock], None] | None = None
    ) -> None:
        super().__init__(clock, run_job)
        self.models = models

    def create(self, region: str, request: dict) -> TransformJob:
        job = TransformJob(
            name=request["TransformJobName"],
            region=region,
            request=copy.deepcopy(request),
            created_at=time.time(),
            model=self.models.get(region, request["ModelName"]),  # a missing model is refused at once
            tags=copy.deepcopy(request.get("Tags", [])),
        )
        return self._add(job)


@dataclass(frozen=True)
class ModelRecord:
    """What a transform job needs from a SageMaker Model."""

    name: str
    arn: str
    image: str
    model_data_url: str | None
    environment: dict[str, str]


class ModelBackend:
    """SageMaker Models, stored in moto's backend (shared with DescribeModel/ListModels/DeleteModel and with the
    labeling jobs' final models); CreateModel refuses a name that exists, as the service does."""

    def __init__(self, account_id: str = DEFAULT_ACCOUNT_ID) -> None:
        self.account_id = account_id
        self._lock = threading.Lock()

    def _moto(self, region: str):
        return sagemaker_backends[self.account_id][region]

    def create(self, region: str, request: dict) -> str:
        name = request["ModelName"]
        backend = self._moto(region)
        with self._lock:
            existing = next((m for m in backend._models.values() if m.model_name.lower() == name.lower()), None)
            if existing is not None:
                raise validation_error(f'Cannot create already existing model "{existing.arn}".')
            model = backend.create_model(
                model_name=name,
                execution_role_arn=request["ExecutionRoleArn"],
                primary_container=copy.deepcopy(request.get("PrimaryContainer")),
                vpc_config=copy.deepcopy(request.get("VpcConfig")),
                containers=copy.deepcopy(request.get("Containers")),
                tags=copy.deepcopy(request.get("Tags")),
            )
        return model.arn

    def get(self, region: str, name: str) -> ModelRecord:
        backend = self._moto(region)
        model = backend._models.get(name) or next(
            (m for m in backend._models.values() if m.model_name.lower() == name.lower()), None
        )
        if model is None:
            raise validation_error(
                f'Could not find model "arn:aws:sagemaker:{region}:{self.account_id}:model/{name.lower()}".'
            )
        container = model.primary_container or (model.containers[0] if model.containers else {})
        return ModelRecord(
            name=model.model_name,
            arn=model.arn,
            image=container.get("Image", ""),
            model_data_url=container.get("ModelDataUrl"),
            environment=dict(container.get("Environment") or {}),
        )


# -- listing -------------------------------------------------------------------------------------------------------
def page(jobs: Iterable[Any], body: dict, status_of: Callable[[Any], str]) -> tuple[list[Any], str | None]:
    """Filter (CreationTime*, LastModifiedTime*, NameContains, StatusEquals), sort and page a List*Jobs request."""
    selected = [job for job in jobs if _matches(job, body, status_of)]
    sort_by = body.get("SortBy", "CreationTime")
    key = {
        "Name": lambda j: j.name,
        "CreationTime": lambda j: (j.created_at, j.name),
        "Status": lambda j: (status_of(j), j.name),
    }[sort_by]
    selected.sort(key=key, reverse=body.get("SortOrder", "Ascending") == "Descending")
    start = 0
    if body.get("NextToken"):
        try:
            start = int(body["NextToken"])
        except ValueError:
            raise validation_error(f"Invalid NextToken {body['NextToken']!r}") from None
    limit = body.get("MaxResults", 10)
    token = str(start + limit) if start + limit < len(selected) else None
    return selected[start : start + limit], token


def _matches(job: Any, body: dict, status_of: Callable[[Any], str]) -> bool:
    created, modified = job.created_at, job.last_modified
    checks = [
        ("CreationTimeAfter", lambda t: created > t),
        ("CreationTimeBefore", lambda t: created < t),
        ("LastModifiedTimeAfter", lambda t: modified > t),
        ("LastModifiedTimeBefore", lambda t: modified < t),
    ]
    for key, ok in checks:
        if key in body and not ok(_epoch(body[key])):
            return False
    if body.get("NameContains") and body["NameContains"].lower() not in job.name.lower():
        return False
    return not (body.get("StatusEquals") and status_of(job) != body["StatusEquals"])


def _epoch(value: float | str) -> float:
    if isinstance(value, int | float):
        return float(value)
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
