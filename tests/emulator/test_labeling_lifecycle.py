"""A labeling job owns its transitions: legal moves happen, illegal ones are refused, a stop always wins."""

from __future__ import annotations

import pytest

from emulator.clock import SimClock
from emulator.labeling.models import IllegalTransition, LabelingBackend, LabelingJob


def _job() -> LabelingJob:
    request = {"LabelingJobName": "life", "LabelAttributeName": "category"}
    return LabelingJob(name="life", region="us-east-1", request=request, created_at=0.0)


def test_a_job_runs_initializing_in_progress_completed():
    job = _job()
    assert job.start() and job.status == "InProgress"
    job.progress(human=3, machine=2, failed=1, unlabeled=4)
    assert job.counters == {
        "TotalLabeled": 5,
        "HumanLabeled": 3,
        "MachineLabeled": 2,
        "FailedNonRetryableError": 1,
        "Unlabeled": 4,
    }
    assert job.complete({"OutputDatasetS3Uri": "s3://b/k"}) == "Completed"
    assert job.output == {"OutputDatasetS3Uri": "s3://b/k"}
    with pytest.raises(IllegalTransition):
        job.progress(human=0, machine=0, failed=0, unlabeled=0)
    with pytest.raises(IllegalTransition):
        job.fail("too late")


def test_completing_before_starting_is_refused():
    job = _job()
    with pytest.raises(IllegalTransition, match="Initializing -> Completed"):
        job.complete({})


def test_a_stop_during_initializing_keeps_the_job_from_starting():
    job = _job()
    assert job.request_stop() and job.status == "Stopping" and job.stop_requested.is_set()
    assert not job.start() and job.status == "Stopping"
    job.stopped({"OutputDatasetS3Uri": "s3://b/k"})
    assert job.status == "Stopped"


def test_a_stop_requested_while_the_last_batch_finishes_ends_stopped():
    job = _job()
    job.start()
    job.request_stop()
    assert job.complete({"OutputDatasetS3Uri": "s3://b/k"}) == "Stopped"


def test_stopping_a_finished_job_changes_nothing():
    job = _job()
    job.start()
    job.fail("ClientError: nope")
    assert not job.request_stop()
    assert job.status == "Failed" and job.failure_reason == "ClientError: nope"
    assert not job.stop_requested.is_set()


def test_the_backend_starts_each_job_through_the_injected_runner_on_its_current_clock():
    ran: list[tuple[str, SimClock]] = []
    backend = LabelingBackend(SimClock(1.0), run_job=lambda job, clock: ran.append((job.name, clock)))
    swapped = SimClock(5.0)
    backend.clock = swapped
    job = backend.create("us-east-1", {"LabelingJobName": "Injected"})
    backend.join(10)
    assert ran == [("Injected", swapped)]
    backend.stop("us-east-1", "injected")
    assert job.status == "Stopping"
