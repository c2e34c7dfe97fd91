"""Labeling jobs and their backend: the state machine every caller goes through, with no HTTP and no labeling.

A job moves itself (`start`, `progress`, `complete`, `fail`, `request_stop`, `stopped`) and refuses an illegal move,
so the worker thread that runs it and the API's stop cannot disagree about its status.
"""

from __future__ import annotations

import copy
import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from emulator import DEFAULT_ACCOUNT_ID
from emulator.clock import SimClock
from emulator.errors import in_use, not_found, validation_error

TERMINAL = ("Completed", "Failed", "Stopped")
ACTIVE = ("Initializing", "InProgress", "Stopping")
# The moves a job may make; anything else is a bug in whoever asked.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "Initializing": ("InProgress", "Failed", "Stopping"),
    "InProgress": ("Completed", "Failed", "Stopping"),
    "Stopping": ("Stopped", "Failed"),
}


class IllegalTransition(RuntimeError):
    """A job was asked to move in a way its lifecycle does not allow."""


@dataclass
class LabelingJob:
    name: str
    region: str
    request: dict
    created_at: float
    account_id: str = DEFAULT_ACCOUNT_ID
    status: str = "Initializing"
    failure_reason: str | None = None
    counters: dict[str, int] = field(
        default_factory=lambda: {
            "TotalLabeled": 0,
            "HumanLabeled": 0,
            "MachineLabeled": 0,
            "FailedNonRetryableError": 0,
            "Unlabeled": 0,
        }
    )
    tags: list[dict[str, str]] = field(default_factory=list)
    output: dict[str, str] | None = None
    # Simulated seconds since creation: the job's own clock, which drives every timestamp it writes.
    elapsed: float = 0.0
    stop_requested: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def arn(self) -> str:
        # The service lowercases the name in the ARN (a real `...-3EX1558056590` came back as `...-3ex1558056590`).
        return f"arn:aws:sagemaker:{self.region}:{self.account_id}:labeling-job/{self.name.lower()}"

    @property
    def last_modified(self) -> float:
        return self.created_at + self.elapsed

    @property
    def job_reference_code(self) -> str:
        return hashlib.sha256(self.arn.encode()).hexdigest()[:12]

    # -- transitions (the only writers of `status`) ---------------------------------------------------------------
    def _move(self, to: str) -> None:
        """Move to `to`; the caller holds `lock`."""
        if to not in TRANSITIONS.get(self.status, ()):
            raise IllegalTransition(f"labeling job {self.name}: {self.status} -> {to} is not allowed")
        self.status = to

    def start(self) -> bool:
        """Initializing -> InProgress; False (and no move) when a stop was requested meanwhile."""
        with self.lock:
            if self.status == "Stopping":
                return False
            self._move("InProgress")
            return True

    def progress(self, *, human: int, machine: int, failed: int, unlabeled: int) -> None:
        """The label counters as batches finish; TotalLabeled follows from the human and machine counts."""
        with self.lock:
            if self.status in TERMINAL:
                raise IllegalTransition(f"labeling job {self.name} is {self.status}: its counters are final")
            self.counters.update(
                HumanLabeled=human,
                MachineLabeled=machine,
                FailedNonRetryableError=failed,
                Unlabeled=unlabeled,
                TotalLabeled=human + machine,
            )

    def advance(self, sim_seconds: float) -> None:
        """Simulated time passed for this job (its timestamps follow)."""
        with self.lock:
            self.elapsed += sim_seconds

    def complete(self, output: dict[str, str]) -> str:
        """InProgress -> Completed with the job's outputs. A stop requested while the last batch finished wins: the
        caller asked for Stopped, and the outputs are the same. Returns the final status."""
        with self.lock:
            self._move("Stopped" if self.status == "Stopping" else "Completed")
            self.output = dict(output) or None
            return self.status

    def fail(self, reason: str) -> None:
        """Any live state -> Failed, with the service's FailureReason (at most 1,024 characters)."""
        with self.lock:
            self._move("Failed")
            self.failure_reason = reason[:1024]

    def request_stop(self) -> bool:
        """Initializing | InProgress -> Stopping, and wake the worker; a finished or stopping job stays as it is."""
        with self.lock:
            if self.status in TERMINAL or self.status == "Stopping":
                return False
            self._move("Stopping")
        self.stop_requested.set()
        return True

    def stopped(self, output: dict[str, str]) -> None:
        """Stopping -> Stopped, with the outputs of the labeled part."""
        with self.lock:
            self._move("Stopped")
            self.output = dict(output) or None

    def describe(self) -> dict[str, Any]:
        with self.lock:
            req = self.request
            desc: dict[str, Any] = {
                "LabelingJobStatus": self.status,
                "LabelCounters": dict(self.counters),
                "CreationTime": self.created_at,
                "LastModifiedTime": self.last_modified,
                "JobReferenceCode": self.job_reference_code,
                "LabelingJobName": self.name,
                "LabelingJobArn": self.arn,
                "LabelAttributeName": req["LabelAttributeName"],
                "InputConfig": copy.deepcopy(req["InputConfig"]),
                "OutputConfig": copy.deepcopy(req["OutputConfig"]),
                "RoleArn": req["RoleArn"],
                "HumanTaskConfig": copy.deepcopy(req["HumanTaskConfig"]),
                "Tags": copy.deepcopy(self.tags),
            }
            for key in ("LabelCategoryConfigS3Uri", "StoppingConditions", "LabelingJobAlgorithmsConfig"):
                if key in req:
                    desc[key] = copy.deepcopy(req[key])
            if self.failure_reason:
                desc["FailureReason"] = self.failure_reason
            if self.output:
                desc["LabelingJobOutput"] = dict(self.output)
            return desc

    def summary(self) -> dict[str, Any]:
        desc = self.describe()
        htc = desc["HumanTaskConfig"]
        summary = {
            key: desc[key]
            for key in (
                "LabelingJobName",
                "LabelingJobArn",
                "CreationTime",
                "LastModifiedTime",
                "LabelingJobStatus",
                "LabelCounters",
                "InputConfig",
            )
        }
        summary["WorkteamArn"] = htc["WorkteamArn"]
        if "PreHumanTaskLambdaArn" in htc:
            summary["PreHumanTaskLambdaArn"] = htc["PreHumanTaskLambdaArn"]
        if "AnnotationConsolidationConfig" in htc:
            summary["AnnotationConsolidationLambdaArn"] = htc["AnnotationConsolidationConfig"][
                "AnnotationConsolidationLambdaArn"
            ]
        for key in ("FailureReason", "LabelingJobOutput"):
            if key in desc:
                summary[key] = desc[key]
        return summary


# Runs one job's whole life on the given clock (blocking); the composition root supplies it.
RunJob = Callable[[LabelingJob, SimClock], None]


class LabelingBackend:
    """All labeling jobs of the emulator's account, per region. Each created job runs in its own thread, through
    `run_job`; without one (unit tests of the API alone) jobs stay Initializing."""

    def __init__(self, clock: SimClock, run_job: RunJob | None = None) -> None:
        self.clock = clock  # read when a job starts, so a test may swap it for a held clock
        self.run_job = run_job
        self._jobs: dict[tuple[str, str], LabelingJob] = {}  # (region, lowercased name) -> job
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    # -- API operations ------------------------------------------------------------------------------------------
    def create(self, region: str, request: dict) -> LabelingJob:
        name = request["LabelingJobName"]
        job = LabelingJob(
            name=name,
            region=region,
            request=copy.deepcopy(request),
            created_at=time.time(),
            tags=copy.deepcopy(request.get("Tags", [])),
        )
        with self._lock:
            if (region, name.lower()) in self._jobs:
                raise in_use(f"Job name {name} already exists in this account and region (names are case-insensitive)")
            self._jobs[(region, name.lower())] = job
        if self.run_job is not None:
            thread = threading.Thread(
                target=self.run_job, args=(job, self.clock), name=f"labeling-job-{name}", daemon=True
            )
            self._threads[job.arn] = thread
            thread.start()
        return job

    def get(self, region: str, name: str) -> LabelingJob:
        with self._lock:
            job = self._jobs.get((region, name.lower()))
        if job is None:
            raise not_found(f"Could not find labeling job with name {name}")
        return job

    def stop(self, region: str, name: str) -> None:
        self.get(region, name).request_stop()  # stopping a finished job is a no-op, as on the service

    def list(self, region: str, body: dict) -> tuple[list[LabelingJob], str | None]:
        with self._lock:
            jobs = [job for (r, _), job in self._jobs.items() if r == region]
        jobs = [job for job in jobs if _matches(job, body)]
        sort_by = body.get("SortBy", "CreationTime")
        key = {
            "Name": lambda j: j.name,
            "CreationTime": lambda j: (j.created_at, j.name),
            "Status": lambda j: (j.status, j.name),
        }[sort_by]
        jobs.sort(key=key, reverse=body.get("SortOrder", "Ascending") == "Descending")
        start = 0
        if body.get("NextToken"):
            try:
                start = int(body["NextToken"])
            except ValueError:
                raise validation_error(f"Invalid NextToken {body['NextToken']!r}") from None
        limit = body.get("MaxResults", 10)
        page = jobs[start : start + limit]
        token = str(start + limit) if start + limit < len(jobs) else None
        return page, token

    def by_arn(self, arn: str) -> LabelingJob | None:
        with self._lock:
            for job in self._jobs.values():
                if job.arn == arn.lower() or job.arn == arn:
                    return job
        return None

    def join(self, timeout: float | None = None) -> None:
        """Wait for every job thread (tests and clean shutdown)."""
        for thread in list(self._threads.values()):
            thread.join(timeout)


def _matches(job: LabelingJob, body: dict) -> bool:
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
    return not (body.get("StatusEquals") and job.status != body["StatusEquals"])


def _epoch(value: float | str) -> float:
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
