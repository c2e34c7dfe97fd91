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
    """Without the triggerer's async channel (as under dag.test), the sync lookup runs in a thread."""
    seen = []
    monkeypatch.setattr(triggers_module, "task_instance_state", lambda *args: seen.append(args) or "restarting")
    trigger, client, _ = make_trigger([])
    trigger.task_instance = types.SimpleNamespace(dag_id=DAG_ID, run_id=RUN_ID, task_id=TASK_ID, map_index=2)
    asyncio.run(trigger.on_kill())
    assert seen == [(DAG_ID, RUN_ID, TASK_ID, 2)] and client.calls == []


def test_in_the_triggerer_the_state_travels_the_runners_async_channel(monkeypatch):
    from airflow.sdk.execution_time import task_runner
    from airflow.sdk.execution_time.comms import TaskStatesResult

    sent = []

    class AsyncComms:
        async def asend(self, msg):
            sent.append(msg)
            return TaskStatesResult(task_states={RUN_ID: {f"{TASK_ID}_2": "failed"}})

    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", AsyncComms(), raising=False)
    monkeypatch.setattr(triggers_module, "task_instance_state", lambda *args: pytest.fail("no thread hop expected"))
    trigger, client, _ = make_trigger([])
    trigger.task_instance = types.SimpleNamespace(dag_id=DAG_ID, run_id=RUN_ID, task_id=TASK_ID, map_index=2)
    asyncio.run(trigger.on_kill())
    assert [(m.dag_id, m.task_ids, m.run_ids, m.map_index) for m in sent] == [(DAG_ID, [TASK_ID], [RUN_ID], 2)]
    assert client.calls == [("stop", JOB_NAME)]


def test_on_kill_finishes_its_stop_through_the_triggerers_repeated_cancellations():
    """Airflow's triggerer re-sends a kill's cancellation at every sync while on_kill runs; the stop still goes out."""
    trigger, client, _ = make_trigger([])
    _with_task_instance(trigger, "failed")

    async def main():
        stopping, release = asyncio.Event(), asyncio.Event()

        async def stop_labeling_job(LabelingJobName):
            stopping.set()
            await release.wait()
            client.calls.append(("stop", LabelingJobName))

        client.stop_labeling_job = stop_labeling_job
        kill = asyncio.create_task(trigger.on_kill())
        await stopping.wait()
        for _ in range(3):
            kill.cancel("__airflow_user_action__")
            await asyncio.sleep(0)
        release.set()
        await kill
        return kill.cancelled()

    assert asyncio.run(main()) is False
    assert client.calls == [("stop", JOB_NAME)]


# --------------------------------------------------------------------------------- one client for many waits
class RecordingClient:
    """An aiobotocore client stand-in that follows one describe script per job and records where it was used."""

    def __init__(self, scripts: dict[str, list], record: dict):
        self.scripts, self.record = scripts, record
        self.loop = asyncio.get_running_loop()

    async def __aenter__(self):
        self.record["opened"].append(self)
        return self

    async def __aexit__(self, *exc):
        assert asyncio.get_running_loop() is self.loop
        self.record["closed"].append(self)
        return False

    async def describe_labeling_job(self, LabelingJobName):
        assert asyncio.get_running_loop() is self.loop, "a client used from another event loop"
        self.record["describes"].append((self, LabelingJobName))
        return self.scripts[LabelingJobName].pop(0)


class GatedSleep:
    """A trigger's sleep that returns only when the test wakes it (no timing)."""

    def __init__(self):
        self.started = 0
        self._changed = asyncio.Event()
        self._go = asyncio.Semaphore(0)

    async def __call__(self, seconds):
        self.started += 1
        self._changed.set()
        await self._go.acquire()

    def wake(self):
        self._go.release()

    async def until_sleeping(self, count=1):
        """Until the trigger has started its count-th sleep."""
        while self.started < count:
            self._changed.clear()
            await self._changed.wait()


def shared_trigger(name, scripts, record, *, open_gate=None, conn_id=None, **kwargs):
    """A trigger whose hook opens a new RecordingClient each time it is asked (the shared registry decides how often),
    sleeping on a GatedSleep."""
    trigger = LabelingJobTrigger(job_name=name, aws_conn_id=conn_id, region_name=REGION, **kwargs)
    trigger._clock, trigger._rand = FakeClock(), (lambda a, b: b)
    trigger.deadline = trigger._clock() + 86400
    trigger._sleep = GatedSleep()
    hook = LabelingJobHook(aws_conn_id=conn_id, region_name=REGION)

    async def get_async_conn():
        record["asked"] += 1
        if open_gate is not None:
            await open_gate.wait()
        return RecordingClient(scripts, record)

    hook.get_async_conn = get_async_conn
    trigger.hook = lambda: hook
    return trigger


def new_record():
    return {"asked": 0, "opened": [], "closed": [], "describes": []}


def users_of(trigger) -> int:
    from groundtruth.async_clients import SHARED_CLIENTS, client_key

    return SHARED_CLIENTS.users(client_key(trigger.hook(), trigger.botocore_config))


async def both_waiting(a, b) -> tuple[asyncio.Task, asyncio.Task]:
    """Start two triggers' waits and return once each sleeps between its checks."""
    task_a, task_b = asyncio.create_task(_collect_async(a)), asyncio.create_task(_collect_async(b))
    await a._sleep.until_sleeping()
    await b._sleep.until_sleeping()
    return task_a, task_b


def test_waits_of_one_connection_share_one_client_until_the_last_ends():
    from groundtruth.async_clients import SHARED_CLIENTS

    running, done = describe_response(status="InProgress"), describe_response(status="Completed", unlabeled=0)
    scripts = {"job-a": [running, done], "job-b": [running, running, done]}
    record = new_record()
    a, b = (shared_trigger(name, scripts, record) for name in ("job-a", "job-b"))

    async def main():
        task_a, task_b = await both_waiting(a, b)
        assert record["asked"] == 1 and len(record["opened"]) == 1 and users_of(a) == 2
        (client,) = record["opened"]
        assert record["describes"] == [(client, "job-a"), (client, "job-b")]

        a._sleep.wake()
        assert [e["status"] for e in await task_a] == ["success"]
        assert record["closed"] == [] and users_of(b) == 1  # b still waits with it

        b._sleep.wake()
        await b._sleep.until_sleeping(2)
        b._sleep.wake()
        assert [e["status"] for e in await task_b] == ["success"]
        assert record["closed"] == [client] and users_of(b) == 0 and len(SHARED_CLIENTS) == 0

    asyncio.run(main())
    assert record["asked"] == 1 and [name for _, name in record["describes"]].count("job-b") == 3


def test_different_connections_or_configs_get_different_clients():
    scripts = {f"job-{i}": [describe_response(status="Completed", unlabeled=0)] for i in range(3)}
    record = new_record()
    triggers = [
        shared_trigger("job-0", scripts, record),
        shared_trigger("job-1", scripts, record, botocore_config={"retries": {"max_attempts": 3}}),
        shared_trigger("job-2", scripts, record, conn_id="aws_other"),
    ]

    async def main():
        return await asyncio.gather(*(_collect_async(t) for t in triggers))

    assert [events[0]["status"] for events in asyncio.run(main())] == ["success"] * 3
    assert len(record["opened"]) == 3 and len(record["closed"]) == 3


def test_a_cancelled_wait_gives_its_client_back_and_the_last_one_closes_it():
    from groundtruth.async_clients import SHARED_CLIENTS

    scripts = {"job-a": [describe_response(status="InProgress")] * 3, "job-b": [describe_response(status="InProgress")]}
    record = new_record()
    a, b = (shared_trigger(name, scripts, record) for name in ("job-a", "job-b"))

    async def main():
        task_a, task_b = await both_waiting(a, b)
        task_b.cancel()  # the triggerer reassigns b mid-wait
        with pytest.raises(asyncio.CancelledError):
            await task_b
        assert record["closed"] == [] and users_of(a) == 1

        task_a.cancel()  # and shuts down with a still waiting
        with pytest.raises(asyncio.CancelledError):
            await task_a
        assert record["closed"] == record["opened"] and len(record["opened"]) == 1 and len(SHARED_CLIENTS) == 0

    asyncio.run(main())


def test_a_wait_cancelled_while_its_client_opens_still_closes_it():
    """Cancelled between asking for the client and getting it: the client opens in a task of its own, and is closed
    as soon as it is open, since nobody uses it any more."""
    from groundtruth.async_clients import SHARED_CLIENTS

    record = new_record()
    open_gate = asyncio.Event  # created inside the loop below
    scripts = {"job-a": [describe_response(status="InProgress")]}

    async def main():
        gate = open_gate()
        a = shared_trigger("job-a", scripts, record, open_gate=gate)
        task = asyncio.create_task(_collect_async(a))
        while record["asked"] == 0:
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert record["opened"] == [] and len(SHARED_CLIENTS) == 0  # nobody holds it; the open still runs
        gate.set()
        for _ in range(100):  # a few loop turns: open, then close
            if record["closed"]:
                break
            await asyncio.sleep(0)
        assert record["closed"] == record["opened"] and record["describes"] == []

    asyncio.run(main())


def test_an_error_opening_the_client_reaches_the_wait_and_the_next_wait_tries_again():
    from groundtruth.async_clients import SHARED_CLIENTS

    record = new_record()
    scripts = {"job-a": [describe_response(status="Completed", unlabeled=0)]}
    failing = shared_trigger("job-a", scripts, record)

    async def no_credentials():
        record["asked"] += 1
        raise client_error("UnrecognizedClientException", "The security token included in the request is invalid")

    failing.hook().get_async_conn = no_credentials
    with pytest.raises(Exception, match="security token"):
        collect(failing)  # as before: the trigger fails, the triggerer reports it
    assert len(SHARED_CLIENTS) == 0

    (event,) = collect(shared_trigger("job-a", scripts, record))
    assert event["status"] == "success" and record["asked"] == 2 and len(record["closed"]) == 1


def test_each_event_loop_gets_its_own_client():
    """Two loops at once (two threads), the same connection: two clients, each used only from its own loop."""
    import threading

    scripts = {name: [describe_response(status="InProgress")] for name in ("job-a", "job-b")}
    record = new_record()
    described = {name: threading.Event() for name in scripts}
    release = threading.Event()
    results: dict[str, BaseException | None] = {}

    def in_own_loop(name):
        trigger = shared_trigger(name, scripts, record)

        async def sleep(seconds):
            described[name].set()
            await asyncio.to_thread(release.wait)
            raise asyncio.CancelledError  # end the wait as a triggerer shutdown would

        trigger._sleep = sleep
        try:
            collect(trigger)
        except BaseException as error:  # noqa: BLE001 -- reported to the main thread
            results[name] = error

    threads = [threading.Thread(target=in_own_loop, args=(name,)) for name in scripts]
    for thread in threads:
        thread.start()
    try:
        assert all(event.wait(30) for event in described.values())
        assert len(record["opened"]) == 2 and record["opened"][0].loop is not record["opened"][1].loop
        assert {client for client, _ in record["describes"]} == set(record["opened"])  # one client a loop
    finally:
        release.set()
        for thread in threads:
            thread.join(30)
    assert all(isinstance(error, asyncio.CancelledError) for error in results.values())
    assert set(record["closed"]) == set(record["opened"])


def test_client_key_names_the_connection_but_holds_no_secret(monkeypatch):
    from airflow.models.connection import Connection

    from groundtruth.async_clients import client_key

    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

    def key_for(password):
        conn = Connection(
            conn_id="aws_gt",
            conn_type="aws",
            login="AKIAEXAMPLE",
            password=password,
            extra=json.dumps({"endpoint_url": "http://emulator:5000"}),
        )
        monkeypatch.setenv("AIRFLOW_CONN_AWS_GT", conn.as_json())
        return client_key(LabelingJobHook(aws_conn_id="aws_gt", region_name=REGION), {"retries": {"max_attempts": 3}})

    key = key_for(secret)
    assert key.aws_conn_id == "aws_gt" and key.endpoint_url == "http://emulator:5000" and key.region_name == REGION
    assert secret not in repr(key) and secret not in str(key.__dict__)
    assert key_for(secret) == key
    assert key_for(secret + "-rotated") != key  # waits that start after a rotation get a new client


def test_a_cancellation_during_the_connection_lookup_keeps_the_triggerers_message(monkeypatch):
    """Airflow's triggerer calls `on_kill` (which stops the job) only for a cancellation carrying its user-action
    message; asgiref turns one that lands while a thread reads the connection into a bare CancelledError. The lookup
    goes through `in_thread`, so the message arrives (seen in a real triggerer: a task marked failed a second after
    deferring left its training job running)."""
    import threading

    from airflow.jobs.triggerer_job_runner import _USER_ACTION_CANCEL_MSG

    import groundtruth.async_clients as async_clients

    entered, release = threading.Event(), threading.Event()
    real_key = async_clients.client_key

    def slow_key(hook, botocore_config=None):
        entered.set()
        release.wait(30)
        return real_key(hook, botocore_config)

    monkeypatch.setattr(async_clients, "client_key", slow_key)
    record = new_record()
    trigger = shared_trigger("job-a", {"job-a": [describe_response(status="InProgress")]}, record)

    async def main():
        task = asyncio.create_task(_collect_async(trigger))
        await asyncio.to_thread(entered.wait, 30)
        task.cancel(_USER_ACTION_CANCEL_MSG)
        await asyncio.sleep(0)
        release.set()
        with pytest.raises(asyncio.CancelledError) as cancelled:
            await task
        return cancelled.value

    assert asyncio.run(main()).args == (_USER_ACTION_CANCEL_MSG,)
    assert record["asked"] == 0  # the lookup never finished into a client
