"""LabelingJobTrigger: serialization, the event sequence of run(), and what cancellation and on_kill do."""

from __future__ import annotations

import asyncio
import importlib
import json
import types

import pytest

from groundtruth import triggers as triggers_module
from groundtruth.hooks import LabelingJobHook
from groundtruth.triggers import (
    UNKNOWN_STATE,
    LabelingJobTrigger,
    kill_should_stop_job,
    task_instance_state,
    task_instance_state_with_timeout,
)
from tests.plugins.fakes import (
    DAG_ID,
    JOB_NAME,
    REGION,
    RUN_ID,
    TASK_ID,
    FakeAsyncClient,
    FakeClock,
    client_error,
    describe_response,
)


def make_trigger(results, *, clock=None, **kwargs):
    """A trigger whose hook talks to a FakeAsyncClient and whose time is a FakeClock."""
    clock = clock or FakeClock()
    kwargs.setdefault("poke_interval", 60)
    trigger = LabelingJobTrigger(job_name=JOB_NAME, aws_conn_id=None, region_name=REGION, **kwargs)
    trigger._sleep, trigger._clock, trigger._rand = clock.async_sleep, clock, (lambda a, b: b)
    if "deadline" not in kwargs:
        trigger.deadline = clock() + kwargs.get("max_wait", 86400)
    client = FakeAsyncClient(results)
    hook = LabelingJobHook(aws_conn_id=None, region_name=REGION)

    async def get_async_conn():
        return client

    hook.get_async_conn = get_async_conn
    trigger.hook = lambda: hook
    return trigger, client, clock


def collect(trigger) -> list[dict]:
    async def run():
        return [event.payload async for event in trigger.run()]

    return asyncio.run(run())


# --------------------------------------------------------------------------------------------------- serialization
def test_serialize_round_trips_through_plain_kwargs():
    trigger = LabelingJobTrigger(
        job_name=JOB_NAME,
        aws_conn_id="aws_default",
        region_name=REGION,
        verify=False,
        botocore_config={"retries": {"mode": "standard", "max_attempts": 5}},
        poke_interval=30,
        max_wait=3600,
        stop_on_cancel=False,
    )
    classpath, kwargs = trigger.serialize()
    json.dumps(kwargs)  # plain, JSON-encodable values only
    module, _, name = classpath.rpartition(".")
    assert module == "groundtruth.triggers" and name == "LabelingJobTrigger"
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert kwargs["deadline"] == pytest.approx(trigger.deadline)


def test_deadline_survives_a_triggerer_restart():
    trigger = LabelingJobTrigger(job_name=JOB_NAME, max_wait=3600)
    _, kwargs = trigger.serialize()
    later = LabelingJobTrigger(**kwargs)
    assert later.deadline == trigger.deadline  # not restarted from "now"


# ------------------------------------------------------------------------------------------------------------ run
def test_run_polls_until_completed_and_yields_one_success_event():
    trigger, client, clock = make_trigger(
        [
            describe_response(status="Initializing"),
            describe_response(status="InProgress", human=40, unlabeled=60),
            describe_response(status="Completed", human=60, machine=40, unlabeled=0, output_manifest="s3://b/o"),
        ]
    )
    events = collect(trigger)
    assert len(events) == 1
    event = events[0]
    assert event["status"] == "success" and event["job_name"] == JOB_NAME
    json.dumps(event)  # the description is JSON-safe (datetimes became strings)
    assert event["description"]["LabelingJobOutput"]["OutputDatasetS3Uri"] == "s3://b/o"
    assert event["description"]["CreationTime"] == "2024-05-17T01:23:45+00:00"
    assert "HumanTaskConfig" not in event["description"]
    assert clock.sleeps == [60, 60]
    assert client.calls == [("describe", JOB_NAME)] * 3


def test_run_survives_throttling_and_server_errors():
    trigger, _, clock = make_trigger(
        [
            client_error("ThrottlingException", "Rate exceeded"),
            client_error("ThrottlingException", "Rate exceeded"),
            client_error("InternalFailure", status=500),
            describe_response(status="InProgress"),
            client_error("ServiceUnavailable", status=503),
            describe_response(status="Completed", unlabeled=0),
        ]
    )
    events = collect(trigger)
    assert [e["status"] for e in events] == ["success"]
    assert clock.sleeps[:3] == [5.0, 10.0, 20.0]  # growing backoff
    assert clock.sleeps[3] == 60 and clock.sleeps[4] == 5.0  # normal interval, then backoff starts over


@pytest.mark.parametrize("status", ["Failed", "Stopped"])
def test_run_reports_failed_and_stopped_jobs_with_the_reason(status):
    trigger, _, _ = make_trigger([describe_response(status=status, failure_reason="Workers unavailable")])
    (event,) = collect(trigger)
    assert event["status"] == "failed"
    assert JOB_NAME in event["message"] and status in event["message"] and "Workers unavailable" in event["message"]
    assert event["description"]["FailureReason"] == "Workers unavailable"


def test_run_reports_a_missing_job_as_an_error():
    trigger, _, _ = make_trigger([client_error("ResourceNotFound", "Could not find job")])
    (event,) = collect(trigger)
    assert event["status"] == "error" and "does not exist" in event["message"]


def test_run_reports_other_client_errors_as_an_error():
    trigger, _, _ = make_trigger([client_error("AccessDeniedException", "not allowed")])
    (event,) = collect(trigger)
    assert event["status"] == "error" and "not allowed" in event["message"]


def test_run_times_out_at_the_deadline_with_the_last_status():
    trigger, _, clock = make_trigger([describe_response(status="InProgress")] * 4, max_wait=150)
    events = collect(trigger)
    assert [e["status"] for e in events] == ["timeout"]
    assert "still InProgress" in events[0]["message"] and "reattaches" in events[0]["message"]
    assert clock.sleeps == [60, 60, 30]


def test_run_never_blocks_the_event_loop_between_polls():
    """Other coroutines keep running while the trigger waits (real asyncio.sleep, tiny interval)."""
    trigger, _, _ = make_trigger(
        [describe_response(status="InProgress"), describe_response(status="Completed", unlabeled=0)],
        poke_interval=0.01,
    )
    trigger._sleep = asyncio.sleep
    ticks: list[int] = []

    async def ticker():
        for i in range(3):
            ticks.append(i)
            await asyncio.sleep(0)

    async def main():
        results = await asyncio.gather(_collect_async(trigger), ticker())
        return results[0]

    events = asyncio.run(main())
    assert events[0]["status"] == "success" and ticks == [0, 1, 2]


async def _collect_async(trigger):
    return [event.payload async for event in trigger.run()]


def test_cancelling_run_does_not_stop_the_job():
    """Triggerer shutdown cancels run(); the trigger resumes elsewhere, so the job must keep running."""
    trigger, client, _ = make_trigger([describe_response(status="InProgress")] * 10)
    started = asyncio.Event()

    async def sleep_forever(seconds):
        started.set()
        await asyncio.Event().wait()

    trigger._sleep = sleep_forever

    async def main():
        task = asyncio.create_task(_collect_async(trigger))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert ("stop", JOB_NAME) not in client.calls


# -------------------------------------------------------------------------------------------------------- on_kill
def _with_task_instance(trigger, state):
    trigger.task_instance = types.SimpleNamespace(dag_id=DAG_ID, run_id=RUN_ID, task_id=TASK_ID, map_index=-1)
    trigger._current_task_state = _returning(state)
    return trigger


def _returning(value):
    async def coroutine():
        return value

    return coroutine


@pytest.mark.parametrize("state", ["failed", "success", "skipped", "upstream_failed", UNKNOWN_STATE])
def test_on_kill_stops_the_job_when_the_user_ended_the_task(state):
    trigger, client, _ = make_trigger([])
    _with_task_instance(trigger, state)
    asyncio.run(trigger.on_kill())
    assert client.calls == [("stop", JOB_NAME)]


@pytest.mark.parametrize("state", [None, "scheduled", "queued", "running", "deferred", "restarting", "up_for_retry"])
def test_on_kill_leaves_the_job_when_the_task_was_cleared_or_taken_over(state):
    trigger, client, _ = make_trigger([])
    _with_task_instance(trigger, state)
    asyncio.run(trigger.on_kill())
    assert client.calls == []


def test_on_kill_does_nothing_without_stop_on_cancel():
    trigger, client, _ = make_trigger([], stop_on_cancel=False)
    _with_task_instance(trigger, "failed")
    asyncio.run(trigger.on_kill())
    assert client.calls == []


def test_on_kill_treats_an_already_finished_job_as_nothing_to_stop():
    trigger, client, _ = make_trigger([])
    _with_task_instance(trigger, "failed")

    async def stop_labeling_job(LabelingJobName):
        client.calls.append(("stop", LabelingJobName))
        raise client_error("ValidationException", "Job already Completed", operation="StopLabelingJob")

    client.stop_labeling_job = stop_labeling_job
    asyncio.run(trigger.on_kill())
    assert client.calls == [("stop", JOB_NAME)]


def test_on_kill_without_a_task_instance_stops(monkeypatch):
    trigger, client, _ = make_trigger([])
    asyncio.run(trigger.on_kill())
    assert client.calls == [("stop", JOB_NAME)]


# ------------------------------------------------------------------------------------------- task-state lookups
def test_kill_policy_differs_between_worker_and_triggerer():
    assert kill_should_stop_job("running", in_triggerer=False) is True  # the killed try itself
    assert kill_should_stop_job("running", in_triggerer=True) is False  # a new try already runs
    assert kill_should_stop_job("restarting", in_triggerer=False) is False
    assert kill_should_stop_job(UNKNOWN_STATE, in_triggerer=True) is True


def test_task_state_is_read_from_the_supervisor(monkeypatch):
    from airflow.sdk.execution_time import task_runner

    calls = []

    def get_task_states(**kwargs):
        calls.append(kwargs)
        return {RUN_ID: {TASK_ID: "failed", f"{TASK_ID}_3": "restarting"}}

    monkeypatch.setattr(task_runner.RuntimeTaskInstance, "get_task_states", staticmethod(get_task_states))
    assert task_instance_state(DAG_ID, RUN_ID, TASK_ID) == "failed"
    assert task_instance_state(DAG_ID, RUN_ID, TASK_ID, 3) == "restarting"
    assert task_instance_state(DAG_ID, RUN_ID, "other") == UNKNOWN_STATE
    assert calls[0] == {"dag_id": DAG_ID, "task_ids": [TASK_ID], "run_ids": [RUN_ID], "map_index": -1}


def test_task_state_is_unknown_without_a_supervisor():
    assert task_instance_state(DAG_ID, RUN_ID, TASK_ID) == UNKNOWN_STATE


def test_task_state_lookup_times_out_instead_of_hanging(monkeypatch):
    import threading

    release = threading.Event()
    monkeypatch.setattr(triggers_module, "task_instance_state", lambda *a: release.wait(5) or "failed")
    try:
        assert task_instance_state_with_timeout(DAG_ID, RUN_ID, TASK_ID, timeout=0.05) == UNKNOWN_STATE
    finally:
        release.set()


def test_trigger_reads_the_state_of_its_own_task_instance(monkeypatch):
    seen = []
    monkeypatch.setattr(triggers_module, "task_instance_state", lambda *args: seen.append(args) or "restarting")
    trigger, client, _ = make_trigger([])
    trigger.task_instance = types.SimpleNamespace(dag_id=DAG_ID, run_id=RUN_ID, task_id=TASK_ID, map_index=2)
    asyncio.run(trigger.on_kill())
    assert seen == [(DAG_ID, RUN_ID, TASK_ID, 2)] and client.calls == []
