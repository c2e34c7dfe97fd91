"""
``LabelingJobTrigger``: waits for a labeling job in the triggerer; the async shell around ``groundtruth.waiting``.

``run()`` never stops the job when it is cancelled, because a triggerer restart or a takeover by another triggerer
cancels it too. :meth:`LabelingJobTrigger.on_kill`, which the triggerer calls only for a user's action on the
deferred task, stops the job, and only when the task instance is finished rather than cleared
(``kill_should_stop_job``; docs/ARCHITECTURE.md, "Kill vs. clear").
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from airflow.providers.common.compat.sdk import AirflowException
from airflow.triggers.base import BaseTrigger, TriggerEvent
from botocore.exceptions import BotoCoreError, ClientError

from groundtruth.async_clients import shared_client
from groundtruth.hooks import SageMakerJobHook
from groundtruth.waiting import LABELING_JOB, THIRTY_DAYS, TRAINING_JOB, TRANSFORM_JOB, JobKind, JobWait

# --------------------------------------------------------------------------------------------------------------------
# What a kill means for the job: decided from the task instance's state at the time of the kill.
# --------------------------------------------------------------------------------------------------------------------
UNKNOWN_STATE = "<unknown>"
# Seconds a kill's stop request may take (with the state lookup's, within the triggerer's 30 s for on_kill).
STOP_TIMEOUT = 15.0

# States of a task instance that will run (or already runs) again and then reattaches to the same job.
_WILL_RUN_AGAIN = frozenset({None, "none", "scheduled", "queued", "restarting", "up_for_retry", "up_for_reschedule"})


def kill_should_stop_job(ti_state: str | None, *, in_triggerer: bool) -> bool:
    """
    Whether killing the task should stop the labeling job, given the task instance's state at kill time.

    * Unknown state → stop: the kill is the user's explicit wish and we cannot show it was a clear.
    * Cleared (no state, scheduled, queued, restarting, up_for_retry) → keep: the next try reattaches.
    * In the triggerer, ``running``/``deferred`` mean a new try already took over (or another triggerer did) → keep.
      On the worker, ``running`` is the try being killed itself (SIGTERM, execution timeout) → stop.
    * Anything else (failed, success, skipped, upstream_failed, removed) → stop.
    """
    if ti_state == UNKNOWN_STATE:
        return True
    if ti_state in _WILL_RUN_AGAIN:
        return False
    return not (in_triggerer and ti_state in ("running", "deferred"))


def task_instance_state(dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> str | None:
    """
    The task instance's current state from the API server (through the task/trigger supervisor), or
    :data:`UNKNOWN_STATE` when it cannot be read (no supervisor, e.g. in unit tests or outside Airflow).
    """
    try:
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

        states = RuntimeTaskInstance.get_task_states(
            dag_id=dag_id, task_ids=[task_id], run_ids=[run_id], map_index=map_index
        )
    except Exception:  # noqa: BLE001 -- any failure here means "unknown", which the caller handles safely
        return UNKNOWN_STATE
    return _state_of(states, run_id, task_id, map_index)


async def task_instance_state_async(dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> str | None:
    """
    :func:`task_instance_state` from the triggerer's event loop: the request travels the trigger runner's own async
    channel to its supervisor (``SUPERVISOR_COMMS.asend``), with no thread in between (a thread hop through asgiref's
    single shared thread queues behind every other trigger's blocking call). Where the channel has no async side
    (``dag.test()`` runs triggers in-process), the sync lookup runs in a thread of its own.
    """
    try:
        from airflow.sdk.execution_time import task_runner
        from airflow.sdk.execution_time.comms import GetTaskStates

        asend = getattr(getattr(task_runner, "SUPERVISOR_COMMS", None), "asend", None)
        if asend is None:
            return await asyncio.to_thread(task_instance_state, dag_id, run_id, task_id, map_index)
        response = await asend(GetTaskStates(dag_id=dag_id, map_index=map_index, task_ids=[task_id], run_ids=[run_id]))
        states = response.task_states
    except Exception:  # noqa: BLE001 -- any failure here means "unknown", which the caller handles safely
        return UNKNOWN_STATE
    return _state_of(states, run_id, task_id, map_index)


def _state_of(states: dict | None, run_id: str, task_id: str, map_index: int | None) -> str | None:
    per_run = (states or {}).get(run_id) or {}
    key = task_id if map_index is None or map_index < 0 else f"{task_id}_{map_index}"
    return per_run.get(key, UNKNOWN_STATE)


def task_instance_state_with_timeout(
    dag_id: str, run_id: str, task_id: str, map_index: int = -1, timeout: float = 5.0
) -> str | None:
    """
    :func:`task_instance_state` on a helper thread, giving up after ``timeout`` seconds.

    ``on_kill`` runs inside the SIGTERM handler, possibly while the interrupted main thread holds the supervisor
    channel's lock; a direct call could deadlock, a helper thread just times out into "unknown".
    """
    result: list[str | None] = [UNKNOWN_STATE]

    def lookup() -> None:
        result[0] = task_instance_state(dag_id, run_id, task_id, map_index)

    thread = threading.Thread(target=lookup, name="groundtruth-ti-state", daemon=True)
    thread.start()
    thread.join(timeout)
    return result[0] if not thread.is_alive() else UNKNOWN_STATE


class SageMakerJobTrigger(BaseTrigger):
    """
    Wait for a SageMaker job of the subclass's ``job_kind`` to finish, without blocking the triggerer's event loop.

    Events: ``{"status": "success" | "failed" | "timeout" | "error", "job_name": ..., "message": ...,
    "description": <the kind's JSON-safe event subset of the description, or None>}``.

    :param job_name: the job to watch.
    :param aws_conn_id: Airflow AWS connection (its ``endpoint_url`` extra is honoured).
    :param region_name: AWS region; default from the connection.
    :param verify: SSL verification for the client.
    :param botocore_config: botocore client configuration dict.
    :param poke_interval: seconds between describes.
    :param max_wait: seconds to wait before a ``timeout`` event. Turned into an absolute ``deadline`` at
        construction, and the deadline is what is serialized, so a triggerer restart does not restart the clock.
    :param deadline: absolute POSIX time after which to give up (overrides ``max_wait``).
    :param stop_on_cancel: stop the job when the task is killed while deferred (see :meth:`on_kill`).
    """

    job_kind: JobKind = LABELING_JOB  # each subclass watches one kind of job

    # Seams for tests: no real sleeping, no wall clock, no randomness.
    _sleep: Callable[[float], Any] = staticmethod(asyncio.sleep)
    _clock: Callable[[], float] = staticmethod(time.time)
    _rand: Callable[[float, float], float] = staticmethod(random.uniform)

    def __init__(
        self,
        job_name: str,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict | None = None,
        poke_interval: float = 60,
        max_wait: float = THIRTY_DAYS,
        deadline: float | None = None,
        stop_on_cancel: bool = True,
        kill_state_timeout: float = 10.0,
    ):
        super().__init__()
        self.job_name = job_name
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.verify = verify
        self.botocore_config = botocore_config
        self.poke_interval = poke_interval
        self.deadline = float(deadline) if deadline is not None else self._clock() + float(max_wait)
        self.stop_on_cancel = stop_on_cancel
        self.kill_state_timeout = kill_state_timeout

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job_name": self.job_name,
                "aws_conn_id": self.aws_conn_id,
                "region_name": self.region_name,
                "verify": self.verify,
                "botocore_config": self.botocore_config,
                "poke_interval": self.poke_interval,
                "deadline": self.deadline,
                "stop_on_cancel": self.stop_on_cancel,
                "kill_state_timeout": self.kill_state_timeout,
            },
        )

    def hook(self) -> SageMakerJobHook:
        return SageMakerJobHook(
            aws_conn_id=self.aws_conn_id,
            region_name=self.region_name,
            verify=self.verify,
            config=self.botocore_config,
        )

    def _event(self, status: str, message: str, description: dict | None = None) -> TriggerEvent:
        return TriggerEvent(
            {
                "status": status,
                "job_name": self.job_name,
                "message": message,
                "description": self.job_kind.event_subset(description) if description else None,
            }
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = self.hook()
        wait = JobWait(
            self.job_kind,
            self.job_name,
            poll_interval=self.poke_interval,
            deadline=self.deadline,
            clock=self._clock,
            rand=self._rand,
            log=self.log,
        )
        # One client for every wait of this connection in the triggerer (groundtruth.async_clients), not one each.
        async with shared_client(hook, self.botocore_config) as client:
            while True:
                try:
                    step = wait.observe(await hook.describe_job_async(self.job_kind, self.job_name, client=client))
                except (ClientError, BotoCoreError) as error:
                    step = wait.observe_error(error)
                if step.result is not None:
                    # "gone" travels as "error", the event vocabulary operators already know.
                    status = "error" if step.result.status == "gone" else step.result.status
                    yield self._event(status, step.result.message, step.result.description)
                    return
                await self._sleep(step.delay)

    async def _current_task_state(self) -> str | None:
        ti = self.task_instance
        if ti is None:
            return UNKNOWN_STATE
        lookup = task_instance_state_async(ti.dag_id, ti.run_id, ti.task_id, getattr(ti, "map_index", -1))
        try:
            return await asyncio.wait_for(lookup, self.kill_state_timeout)
        except TimeoutError:
            return UNKNOWN_STATE

    async def on_kill(self) -> None:
        """Stop the job when the user ended the deferred task (see the module docstring for when this runs).

        Airflow's triggerer cancels the trigger again at every sync with its supervisor for as long as ``on_kill``
        runs (the trigger stays in the supervisor's cancelling set until it ends), and a cancelled ``on_kill`` is
        silently dropped. So the decision and the stop run in a task of their own that those repeats cannot cut
        short; it is bounded by ``kill_state_timeout`` and :data:`STOP_TIMEOUT`.
        """
        if not self.stop_on_cancel:
            return
        work = asyncio.ensure_future(self._stop_unless_taken_over())
        while not work.done():
            try:
                await asyncio.shield(work)
            except asyncio.CancelledError:
                continue  # a repeat of the same kill (or a shutdown): the stop still finishes, within its bounds
        work.result()

    async def _stop_unless_taken_over(self) -> None:
        state = await self._current_task_state()
        noun = self.job_kind.noun.lower()
        if not kill_should_stop_job(state, in_triggerer=True):
            self.log.info(
                "Task instance is now %s, so it will run again and reattach: leaving %s %s running",
                state,
                noun,
                self.job_name,
            )
            return
        self.log.info("Task was killed (task instance state %s): stopping %s %s", state, noun, self.job_name)
        await asyncio.wait_for(self.hook().stop_job_async(self.job_kind, self.job_name), STOP_TIMEOUT)


class LabelingJobTrigger(SageMakerJobTrigger):
    """Wait for a labeling job (events carry the JSON-safe subset of DescribeLabelingJob)."""

    job_kind = LABELING_JOB


class TrainingJobTrigger(SageMakerJobTrigger):
    """Wait for a training job. Unlike the provider's trigger it stops the job when the task is killed (not when
    cleared) and keeps an absolute deadline instead of counting attempts, so a triggerer restart changes nothing."""

    job_kind = TRAINING_JOB


class TransformJobTrigger(SageMakerJobTrigger):
    """Wait for a batch-transform job."""

    job_kind = TRANSFORM_JOB


def job_from_event(
    event: dict[str, Any] | None,
    *,
    task_id: str,
    describe: Callable[[str], dict[str, Any]],
    failure: Callable[[dict[str, Any]], Exception],
    noun: str = "Labeling job",
) -> dict[str, Any]:
    """What a task resumed from a :class:`SageMakerJobTrigger` makes of its event: the completed job's description
    (described again when the event carries none), or the exception to raise — ``failure(description)`` for a job
    that ended Failed/Stopped, a timeout that leaves the job running, or the error the trigger met."""
    from groundtruth.hooks import LabelingJobWaitTimeout

    if not event:
        raise AirflowException(f"Task {task_id}: the {noun.lower()} trigger ended without an event")
    job_name = event.get("job_name")
    status = event.get("status")
    description = event.get("description")
    if status == "success":
        return description or describe(job_name)
    if status == "failed" and description:
        raise failure(description)
    if status == "timeout":
        raise LabelingJobWaitTimeout(event.get("message") or f"{noun} {job_name} did not finish in time")
    raise AirflowException(f"Error while waiting for {noun.lower()} {job_name}: {event.get('message')}")
