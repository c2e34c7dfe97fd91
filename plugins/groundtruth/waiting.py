"""The one rule for "what does this status or error mean" while waiting on a SageMaker job, and the one wait.

The terminal, failure and still-running statuses of a job kind come from a botocore waiter definition, loaded as
botocore loads its own: our `waiters/labeling_job.json` for labeling jobs (botocore and the provider ship none),
botocore's `TrainingJobCompletedOrStopped` / `TransformJobCompletedOrStopped` for training and transform jobs.
`JobWait` decides, observation by observation, whether the wait is over and how long to sleep; the synchronous
hook loop, the trigger and the sensor only do the I/O around it.

Why not the provider's `AwsBaseWaiterTrigger` / `waiter_with_logging`: they count attempts at a fixed delay, so a
throttling storm is not backed off, and a triggerer restart restarts the count; a labeling wait needs an absolute
deadline (days long, serialized with the trigger), jittered backoff on throttling and per-poll progress lines.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError
from botocore.waiter import SingleWaiterConfig, WaiterModel

from groundtruth.aws_errors import backoff_delay, is_not_found_error, is_transient_error
from groundtruth.descriptions import (
    description_subset,
    progress_message,
    summarize_labeling_job,
    summarize_training_job,
    summarize_transform_job,
)

WAITERS_DIR = Path(__file__).parent / "waiters"
THIRTY_DAYS = 30 * 24 * 3600.0  # the longest a labeling job can run

Outcome = Literal["success", "failure", "retry"]


class StatusRule:
    """A job kind's statuses and errors, read from the acceptors of one botocore waiter."""

    def __init__(self, waiter: SingleWaiterConfig, status_key: str) -> None:
        self.waiter = waiter
        self.status_key = status_key
        by_state: dict[str, set[str]] = {"success": set(), "failure": set(), "retry": set()}
        for acceptor in waiter.acceptors:
            if acceptor.matcher == "path" and acceptor.argument == status_key:
                by_state[acceptor.state].add(acceptor.expected)
        self.success_states = frozenset(by_state["success"])
        self.failure_states = frozenset(by_state["failure"])
        self.waiting_states = frozenset(by_state["retry"])
        self.terminal_states = self.success_states | self.failure_states

    def outcome(self, response: Mapping[str, Any]) -> Outcome | None:
        """The first acceptor matching a describe response or an error response (`ClientError.response`)."""
        for acceptor in self.waiter.acceptors:
            if acceptor.matcher_func(response):
                return acceptor.state
        return None

    def status_outcome(self, description: Mapping[str, Any]) -> Outcome:
        # A status the waiter does not list (a new one the service added) means "not finished yet", as in botocore.
        return self.outcome(description) or "retry"

    def error_outcome(self, error: BaseException) -> Literal["retry", "gone", "error"]:
        """`gone`: the job does not exist; `retry`: ask again later; `error`: the wait cannot go on."""
        if is_not_found_error(error):
            return "gone"
        state = self.outcome(error.response) if isinstance(error, ClientError) else None
        if state == "retry" or (state is None and is_transient_error(error)):
            return "retry"
        return "error"


def _waiter_config(source: str, waiter_name: str) -> SingleWaiterConfig:
    """A waiter from our JSON file `waiters/<source>.json`, else from botocore's model of service `source`."""
    path = WAITERS_DIR / f"{source}.json"
    if path.exists():
        return WaiterModel(json.loads(path.read_text())).get_waiter(waiter_name)
    import botocore.session

    return botocore.session.get_session().get_waiter_model(source).get_waiter(waiter_name)


@dataclass(frozen=True)
class JobKind:
    """One kind of SageMaker job: its API calls, its names, what its statuses mean and how it is summarized."""

    noun: str  # "Labeling job"
    create_api: str  # "CreateLabelingJob": the operation requests are validated against
    name_param: str  # "LabelingJobName"
    arn_key: str  # "LabelingJobArn"
    status_key: str  # "LabelingJobStatus"
    list_key: str  # "LabelingJobSummaryList": where a List<Kind>s page holds its job summaries
    running_states: tuple[str, ...]  # the StatusEquals values of a job that runs (and costs) and is not stopping
    waiter_source: str  # our waiters/<source>.json, else a botocore service name
    waiter_name: str
    progress: Callable[[Mapping[str, Any]], str] = field(compare=False)
    summarize: Callable[[Mapping[str, Any]], dict[str, Any]] = field(compare=False)
    # The part of a description a trigger event carries (small, JSON-safe).
    event_subset: Callable[[Mapping[str, Any]], dict[str, Any]] = field(compare=False)
    # Terminal statuses that leave nothing usable although the waiter calls them a success (botocore's training and
    # transform waiters end "successfully" on Stopped).
    unusable_states: frozenset[str] = frozenset()

    @property
    def create_operation(self) -> str:
        return _snake(self.create_api)

    @property
    def describe_operation(self) -> str:
        return _snake(self.create_api.replace("Create", "Describe", 1))

    @property
    def stop_operation(self) -> str:
        return _snake(self.create_api.replace("Create", "Stop", 1))

    @property
    def list_operation(self) -> str:
        return _snake(self.create_api.replace("Create", "List", 1) + "s")

    @cached_property
    def rule(self) -> StatusRule:
        return StatusRule(_waiter_config(self.waiter_source, self.waiter_name), self.status_key)

    @property
    def success_states(self) -> frozenset[str]:
        return self.rule.success_states - self.unusable_states

    @property
    def failure_states(self) -> frozenset[str]:
        return self.rule.failure_states | self.unusable_states

    def status(self, description: Mapping[str, Any]) -> str | None:
        return description.get(self.status_key)

    def failure_message(self, job_name: str, description: Mapping[str, Any]) -> str:
        reason = description.get("FailureReason") or "no FailureReason given"
        return f"{self.noun} {job_name} ended with status {self.status(description)}: {reason}"


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


def _generic_progress(kind_noun: str, name_key: str, status_key: str) -> Callable[[Mapping[str, Any]], str]:
    def progress(description: Mapping[str, Any]) -> str:
        secondary = description.get("SecondaryStatus")
        extra = f" ({secondary})" if secondary and secondary != description.get(status_key) else ""
        return f"{kind_noun} {description.get(name_key)} is {description.get(status_key)}{extra}"

    return progress


LABELING_JOB = JobKind(
    noun="Labeling job",
    create_api="CreateLabelingJob",
    name_param="LabelingJobName",
    arn_key="LabelingJobArn",
    status_key="LabelingJobStatus",
    list_key="LabelingJobSummaryList",
    running_states=("Initializing", "InProgress"),
    waiter_source="labeling_job",
    waiter_name="LabelingJobComplete",
    progress=progress_message,
    summarize=summarize_labeling_job,
    event_subset=description_subset,
)
TRAINING_JOB = JobKind(
    noun="Training job",
    create_api="CreateTrainingJob",
    name_param="TrainingJobName",
    arn_key="TrainingJobArn",
    status_key="TrainingJobStatus",
    list_key="TrainingJobSummaries",
    running_states=("InProgress",),
    waiter_source="sagemaker",
    waiter_name="TrainingJobCompletedOrStopped",
    progress=_generic_progress("Training job", "TrainingJobName", "TrainingJobStatus"),
    summarize=summarize_training_job,
    event_subset=summarize_training_job,
    unusable_states=frozenset({"Stopped"}),
)
TRANSFORM_JOB = JobKind(
    noun="Transform job",
    create_api="CreateTransformJob",
    name_param="TransformJobName",
    arn_key="TransformJobArn",
    status_key="TransformJobStatus",
    list_key="TransformJobSummaries",
    running_states=("InProgress",),
    waiter_source="sagemaker",
    waiter_name="TransformJobCompletedOrStopped",
    progress=_generic_progress("Transform job", "TransformJobName", "TransformJobStatus"),
    summarize=summarize_transform_job,
    event_subset=summarize_transform_job,
    unusable_states=frozenset({"Stopped"}),
)
JOB_KINDS = {kind.create_api: kind for kind in (LABELING_JOB, TRAINING_JOB, TRANSFORM_JOB)}


@dataclass(frozen=True)
class WaitResult:
    """How a wait ended: `success` | `failed` (a terminal failure status) | `gone` | `error` | `timeout`."""

    status: Literal["success", "failed", "gone", "error", "timeout"]
    message: str
    description: dict[str, Any] | None = None


@dataclass(frozen=True)
class Step:
    """After one observation: the wait is over (`result`), or sleep `delay` seconds and describe again."""

    result: WaitResult | None = None
    delay: float = 0.0


class JobWait:
    """The decisions of one wait, observation by observation; it never sleeps and never calls AWS itself.

    Transient errors back off with jitter (from `min(poll_interval, 5)` s, capped at 300 s) and never end the wait;
    every description is logged as a progress line; past `deadline` (absolute, `clock()` time) the wait ends in
    `timeout` and leaves the job running.
    """

    def __init__(
        self,
        kind: JobKind,
        job_name: str,
        *,
        poll_interval: float,
        deadline: float,
        clock: Callable[[], float] = time.time,
        rand: Callable[[float, float], float] | None = None,
        log: logging.Logger | Any = None,
    ) -> None:
        self.kind = kind
        self.job_name = job_name
        self.poll_interval = poll_interval
        self.deadline = deadline
        self.clock = clock
        self.rand = rand or random.uniform
        self.log = log or logging.getLogger(__name__)
        self.transient_errors = 0
        self.last: dict[str, Any] | None = None

    def observe(self, description: Mapping[str, Any]) -> Step:
        self.transient_errors = 0
        self.last = dict(description)
        self.log.info(self.kind.progress(description))
        outcome = self.kind.rule.status_outcome(description)
        if self.kind.status(description) in self.kind.unusable_states:
            outcome = "failure"
        if outcome == "success":
            return Step(WaitResult("success", f"{self.kind.noun} {self.job_name} completed", self.last))
        if outcome == "failure":
            return Step(WaitResult("failed", self.kind.failure_message(self.job_name, description), self.last))
        return self._sleep(self.poll_interval)

    def observe_error(self, error: ClientError | BotoCoreError) -> Step:
        meaning = self.kind.rule.error_outcome(error)
        if meaning == "gone":
            return Step(WaitResult("gone", f"{self.kind.noun} {self.job_name} does not exist: {error}", self.last))
        if meaning == "error":
            return Step(WaitResult("error", f"Describing {self.kind.noun.lower()} {self.job_name} failed: {error}"))
        delay = backoff_delay(self.transient_errors, base=max(1.0, min(self.poll_interval, 5.0)), rand=self.rand)
        self.transient_errors += 1
        self.log.warning(
            "Describing %s %s failed transiently (%s); trying again in %.1fs",
            self.kind.noun.lower(),
            self.job_name,
            error,
            delay,
        )
        return self._sleep(delay)

    def _sleep(self, delay: float) -> Step:
        remaining = self.deadline - self.clock()
        if remaining <= 0:
            status = self.kind.status(self.last) if self.last else "unknown"
            return Step(
                WaitResult(
                    "timeout",
                    f"{self.kind.noun} {self.job_name} was still {status} at the deadline; it keeps running and "
                    "re-running the task reattaches to it.",
                    self.last,
                )
            )
        return Step(delay=min(delay, remaining))
