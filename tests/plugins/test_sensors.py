"""LabelingJobSensor: waits on a job launched elsewhere and never owns (or stops) it."""

from __future__ import annotations

import pytest
from airflow.providers.common.compat.sdk import AirflowException, PokeReturnValue, TaskDeferred

from groundtruth.hooks import LabelingJobWaitTimeout
from groundtruth.sensors import LabelingJobSensor
from groundtruth.triggers import LabelingJobTrigger
from tests.plugins.fakes import JOB_NAME, REGION, context, describe_response


def make_sensor(hook, **kwargs):
    kwargs.setdefault("deferrable", False)
    sensor = LabelingJobSensor(task_id="wait", job_name=JOB_NAME, aws_conn_id=None, region_name=REGION, **kwargs)
    sensor.__dict__["hook"] = hook
    return sensor


@pytest.mark.parametrize("status", ["Initializing", "InProgress", "Stopping"])
def test_poke_is_not_done_while_the_job_runs(hook, stub, status):
    stub.add_response("describe_labeling_job", describe_response(status=status))
    assert make_sensor(hook).poke(context()) is False


def test_poke_returns_the_summary_when_completed(hook, stub):
    stub.add_response("describe_labeling_job", describe_response(status="Completed", human=3, unlabeled=0))
    result = make_sensor(hook).poke(context())
    assert isinstance(result, PokeReturnValue) and result.is_done
    assert result.xcom_value["LabelingJobStatus"] == "Completed" and result.xcom_value["human_labeled"] == 3


@pytest.mark.parametrize("status", ["Failed", "Stopped"])
def test_poke_fails_with_the_reason(hook, stub, status):
    stub.add_response("describe_labeling_job", describe_response(status=status, failure_reason="Bad template"))
    with pytest.raises(AirflowException, match=f"{JOB_NAME} ended with status {status}: Bad template"):
        make_sensor(hook).poke(context())


def test_poke_treats_throttling_as_not_yet(hook, stub):
    stub.add_client_error("describe_labeling_job", "ThrottlingException", "Rate exceeded")
    assert make_sensor(hook).poke(context()) is False


def test_poke_fails_for_a_missing_job(hook, stub):
    stub.add_client_error("describe_labeling_job", "ResourceNotFound", "nope")
    with pytest.raises(AirflowException, match="does not exist"):
        make_sensor(hook).poke(context())


def test_deferrable_sensor_defers_without_owning_the_job(hook, stub):
    stub.add_response("describe_labeling_job", describe_response(status="InProgress"))
    with pytest.raises(TaskDeferred) as info:
        make_sensor(hook, deferrable=True, poke_interval=120).execute(context())
    trigger = info.value.trigger
    assert isinstance(trigger, LabelingJobTrigger)
    assert trigger.stop_on_cancel is False and trigger.poke_interval == 120 and trigger.job_name == JOB_NAME


def test_deferrable_sensor_returns_at_once_for_a_finished_job(hook, stub):
    stub.add_response("describe_labeling_job", describe_response(status="Completed", unlabeled=0))
    assert make_sensor(hook, deferrable=True).execute(context())["LabelingJobStatus"] == "Completed"


def test_execute_complete(hook):
    sensor = make_sensor(hook)
    done = {"status": "success", "job_name": JOB_NAME, "description": describe_response(status="Completed")}
    assert sensor.execute_complete(context(), done)["status"] == "Completed"
    failed = {"status": "failed", "job_name": JOB_NAME, "description": describe_response(status="Failed")}
    with pytest.raises(AirflowException, match="no FailureReason given"):
        sensor.execute_complete(context(), failed)
    with pytest.raises(LabelingJobWaitTimeout):
        sensor.execute_complete(context(), {"status": "timeout", "job_name": JOB_NAME, "message": "late"})


def test_default_timeout_covers_the_longest_job():
    sensor = LabelingJobSensor(task_id="wait", job_name="{{ ti.xcom_pull('label')['job_name'] }}")
    assert sensor.timeout == 30 * 86400 and sensor.deferrable is True and "job_name" in sensor.template_fields
