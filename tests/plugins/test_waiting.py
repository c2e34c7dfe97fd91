"""The one status rule: each job kind's statuses come from its botocore waiter, and JobWait decides on them."""

from __future__ import annotations

import pytest

from groundtruth.waiting import LABELING_JOB, TRAINING_JOB, TRANSFORM_JOB, JobWait
from tests.plugins.fakes import FakeClock, client_error


def test_labeling_statuses_come_from_our_waiter_file():
    rule = LABELING_JOB.rule
    assert rule.success_states == {"Completed"}
    assert rule.failure_states == {"Failed", "Stopped"}
    assert rule.waiting_states == {"Initializing", "InProgress", "Stopping"}


@pytest.mark.parametrize("kind", [TRAINING_JOB, TRANSFORM_JOB], ids=["training", "transform"])
def test_training_and_transform_statuses_come_from_botocores_waiters(kind):
    # botocore's waiter ends "successfully" on Stopped; a stopped job has no usable result, so it counts as failed.
    assert kind.rule.success_states == {"Completed", "Stopped"}
    assert kind.success_states == {"Completed"}
    assert kind.failure_states == {"Failed", "Stopped"}
    assert kind.describe_operation == f"describe_{kind.noun.split()[0].lower()}_job"


@pytest.mark.parametrize(
    ("status", "outcome"),
    [("InProgress", None), ("Stopping", None), ("Completed", "success"), ("Failed", "failed"), ("Stopped", "failed")],
)
def test_a_training_wait_ends_on_what_the_rule_says(status, outcome):
    clock = FakeClock()
    wait = JobWait(TRAINING_JOB, "t", poll_interval=60, deadline=clock() + 3600, clock=clock)
    step = wait.observe({"TrainingJobName": "t", "TrainingJobStatus": status, "FailureReason": "OOM"})
    assert (step.result.status if step.result else None) == outcome
    if outcome == "failed":
        assert "Training job t ended with status" in step.result.message and "OOM" in step.result.message


def test_errors_retry_when_transient_and_end_the_wait_otherwise():
    clock = FakeClock()
    wait = JobWait(TRANSFORM_JOB, "x", poll_interval=60, deadline=clock() + 3600, clock=clock, rand=lambda a, b: b)
    assert wait.observe_error(client_error("ThrottlingException")).delay == 5.0
    gone = wait.observe_error(client_error("ValidationException", "Requested resource not found"))
    assert gone.result.status == "gone"
    assert wait.observe_error(client_error("AccessDeniedException")).result.status == "error"
