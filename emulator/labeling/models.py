"""Labeling jobs: records, the backend behind the four API operations, and the lifecycle rules.

No HTTP here (responses.py translates the wire format) and no labeling here (runner.py runs a job's life).
"""

from __future__ import annotations

import copy
import hashlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from emulator import DEFAULT_ACCOUNT_ID
from emulator.clock import SimClock
from emulator.errors import in_use, not_found, validation_error
from emulator.faults import FaultInjector

TERMINAL = ("Completed", "Failed", "Stopped")
ACTIVE = ("Initializing", "InProgress", "Stopping")


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

    def set_counters(self, **values: int) -> None:
        with self.lock:
            self.counters.update(values)
            self.counters["TotalLabeled"] = self.counters["HumanLabeled"] + self.counters["MachineLabeled"]

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


class LabelingBackend:
    """All labeling jobs of the emulator's account, per region. Each created job runs in its own thread."""

    def __init__(self, clock: SimClock, faults: FaultInjector | None = None, start_jobs: bool = True) -> None:
        self.clock = clock
        self.faults = faults or FaultInjector()
        self.start_jobs = start_jobs
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
        if self.start_jobs:
            from emulator.labeling.runner import JobRunner

            thread = threading.Thread(
                target=JobRunner(job, self.clock, self.faults).run, name=f"labeling-job-{name}", daemon=True
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
        job = self.get(region, name)
        with job.lock:
            if job.status in TERMINAL:
                return  # stopping a finished job is a no-op, as on the service
            job.status = "Stopping"
        job.stop_requested.set()

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

    def add_tags(self, job: LabelingJob, tags: list[dict[str, str]]) -> None:
        with job.lock:
            existing = {t["Key"]: t for t in job.tags}
            for tag in tags:
                existing[tag["Key"]] = dict(tag)
            job.tags = list(existing.values())

    def delete_tags(self, job: LabelingJob, keys: list[str]) -> None:
        with job.lock:
            job.tags = [t for t in job.tags if t["Key"] not in keys]

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
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
