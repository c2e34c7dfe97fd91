"""CreateLabelingJobOperator: never a second paid job — create, reattach, restart, races, waits, kills."""

from __future__ import annotations

import copy
import json
import sys
import types

import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, TaskDeferred

from groundtruth.hooks import LabelingJobWaitTimeout
from groundtruth.links import LabelingJobConsoleLink, LabelingJobOutputLink
from groundtruth.operators import CreateLabelingJobOperator, TaskIdentity, lineage_locations, tag_value
from groundtruth.requests import with_attempt_suffix
from groundtruth.triggers import LabelingJobTrigger
from tests.plugins.fakes import (
    DAG_ID,
    JOB_NAME,
    REGION,
    RUN_ID,
    TASK_ID,
    FakeClock,
    context,
    describe_response,
    job_arn,
    job_request,
)

OURS = TaskIdentity(DAG_ID, RUN_ID, TASK_ID, -1, 1)
OUR_TAGS = OURS.tags()
OTHER_RUN_TAGS = TaskIdentity(DAG_ID, "scheduled__2024-01-01T00:00:00+00:00", TASK_ID).tags()
NAME_A1 = with_attempt_suffix(JOB_NAME, 1)


def make_operator(hook, *, ti_state="failed", clock=None, config=None, **kwargs):
    kwargs.setdefault("deferrable", False)
    kwargs.setdefault("check_interval", 60)
    op = CreateLabelingJobOperator(
        task_id=TASK_ID,
        config=job_request() if config is None else config,
        aws_conn_id=None,
        region_name=REGION,
        **kwargs,
    )
    op.__dict__["hook"] = hook  # the stubbed hook instead of one built from a connection
    clock = clock or FakeClock()
    op._sleep, op._clock, op._rand = clock.sleep, clock, (lambda a, b: b)
    op._ti_state = lambda *args: ti_state
    return op


def expected_create(name=JOB_NAME, tags=None, **changes):
    request = job_request(**changes)
    request["LabelingJobName"] = name
    request["Tags"] = [{"Key": k, "Value": v} for k, v in (tags or OUR_TAGS).items()]
    return request


def not_found(stub, name=JOB_NAME):
    stub.add_client_error(
        "describe_labeling_job", "ResourceNotFound", f"Could not find {name}", 400, {"LabelingJobName": name}
    )


def described(stub, status, name=JOB_NAME, tags=OUR_TAGS, **kwargs):
    stub.add_response(
        "describe_labeling_job", describe_response(name, status, tags=tags, **kwargs), {"LabelingJobName": name}
    )


# ------------------------------------------------------------------------------------------------------ fresh run
def test_first_try_creates_the_job_tagged_with_dag_run_task_and_try(hook, stub):
    not_found(stub)
    stub.add_response("create_labeling_job", {"LabelingJobArn": job_arn(JOB_NAME)}, expected_create())
    described(stub, "Initializing")
    result = make_operator(hook, wait_for_completion=False).execute(context())
    assert result["LabelingJobName"] == JOB_NAME and result["LabelingJobStatus"] == "Initializing"
    assert {
        "airflow:dag_id": DAG_ID,
        "airflow:run_id": RUN_ID,
        "airflow:task_id": TASK_ID,
        "airflow:map_index": "-1",
        "airflow:task_instance_key": OURS.key,
        "airflow:try_number": "1",
    } == OUR_TAGS


def test_first_try_waits_and_returns_a_json_safe_summary(hook, stub):
    not_found(stub)
    stub.add_response("create_labeling_job", {"LabelingJobArn": job_arn(JOB_NAME)}, expected_create())
    described(stub, "Initializing")
    described(stub, "InProgress", human=10, unlabeled=90)
    described(
        stub,
        "Completed",
        human=60,
        machine=40,
        unlabeled=0,
        output_manifest="s3://bucket/run/iteration-1/output/job/manifests/output/output.manifest",
        final_model_arn="arn:aws:sagemaker:us-east-1:123456789012:model/final",
    )
    clock = FakeClock()
    result = make_operator(hook, clock=clock).execute(context())
    json.dumps(result)
    assert result["LabelingJobStatus"] == "Completed"
    assert result["LabelCounters"] == {
        "TotalLabeled": 100,
        "HumanLabeled": 60,
        "MachineLabeled": 40,
        "FailedNonRetryableError": 0,
        "Unlabeled": 0,
    }
    assert result["OutputDatasetS3Uri"].endswith("manifests/output/output.manifest")
    assert result["FinalActiveLearningModelArn"] == result["final_model_arn"]
    assert clock.sleeps == [60, 60]


def test_user_tags_are_kept_and_airflow_tags_win(hook, stub):
    config = job_request(tags={"experiment": "birds", "airflow:run_id": "forged"})
    not_found(stub)
    stub.add_response(
        "create_labeling_job",
        {"LabelingJobArn": job_arn(JOB_NAME)},
        {
            **config,
            "Tags": [{"Key": "experiment", "Value": "birds"}] + [{"Key": k, "Value": v} for k, v in OUR_TAGS.items()],
        },
    )
    described(stub, "Initializing")
    make_operator(hook, config=config, wait_for_completion=False).execute(context())


def test_templated_integers_are_sent_as_integers(hook, stub):
    config = copy.deepcopy(job_request())
    config["HumanTaskConfig"]["NumberOfHumanWorkersPerDataObject"] = "3"
    config["HumanTaskConfig"]["TaskTimeLimitInSeconds"] = "600"
    expected = expected_create(workers_per_object=3, task_time_limit_seconds=600)
    not_found(stub)
    stub.add_response("create_labeling_job", {"LabelingJobArn": job_arn(JOB_NAME)}, expected)
    described(stub, "Initializing")
    make_operator(hook, config=config, wait_for_completion=False).execute(context())


def test_config_may_be_a_json_string(hook, stub):
    not_found(stub)
    stub.add_response("create_labeling_job", {"LabelingJobArn": job_arn(JOB_NAME)}, expected_create())
    described(stub, "Initializing")
    make_operator(hook, config=json.dumps(job_request()), wait_for_completion=False).execute(context())


def test_invalid_request_fails_before_any_call_naming_the_field(hook, stub):
    config = job_request()
    config["HumanTaskConfig"]["NumberOfHumanWorkersPerDataObject"] = 12
    with pytest.raises(AirflowFailException, match=r"HumanTaskConfig\.NumberOfHumanWorkersPerDataObject"):
        make_operator(hook, config=config).execute(context())


def test_extra_links_are_stored_while_the_job_runs(hook, stub):
    not_found(stub)
    stub.add_response("create_labeling_job", {"LabelingJobArn": job_arn(JOB_NAME)}, expected_create())
    described(stub, "Initializing")
    ctx = context()
    make_operator(hook, wait_for_completion=False).execute(ctx)
    xcoms = ctx["ti"].xcoms
    assert xcoms[LabelingJobConsoleLink().xcom_key] == (
        f"https://us-east-1.console.aws.amazon.com/sagemaker/groundtruth?region=us-east-1"
        f"#/labeling-jobs/details/{JOB_NAME}"
    )
    assert xcoms[LabelingJobOutputLink().xcom_key] == (
        f"https://console.aws.amazon.com/s3/buckets/bucket?region=us-east-1&prefix=run/iteration-1/output/{JOB_NAME}/"
    )
    assert xcoms[LabelingJobConsoleLink.key]["job_name"] == JOB_NAME


# --------------------------------------------------------------------------------------------------------- reattach
def test_retry_reattaches_to_its_running_job_and_waits(hook, stub):
    described(stub, "InProgress", human=5)
    described(stub, "InProgress", human=50)
    described(stub, "Completed", human=100, unlabeled=0)
    result = make_operator(hook).execute(context(try_number=2))
    assert result["LabelingJobName"] == JOB_NAME and result["human_labeled"] == 100
    # The Stubber would have rejected any CreateLabelingJob: none was queued.


def test_retry_of_a_completed_job_returns_it_without_creating(hook, stub):
    described(stub, "Completed", human=70, machine=30, unlabeled=0)
    result = make_operator(hook).execute(context(try_number=3))
    assert result["LabelingJobStatus"] == "Completed" and result["machine_labeled"] == 30


def test_ownership_is_read_through_list_tags_when_describe_has_no_tags(hook, stub):
    described(stub, "Completed", tags=None)
    stub.add_response(
        "list_tags",
        {"Tags": [{"Key": k, "Value": v} for k, v in OUR_TAGS.items()]},
        {"ResourceArn": job_arn(JOB_NAME), "MaxResults": 100},
    )
    assert make_operator(hook).execute(context())["LabelingJobStatus"] == "Completed"


@pytest.mark.parametrize("status", ["Failed", "Stopped"])
def test_retry_of_a_failed_job_fails_with_name_status_and_reason(hook, stub, status):
    described(stub, status, failure_reason="ClientError: manifest not found")
    not_found(stub, NAME_A1)
    with pytest.raises(AirflowFailException) as info:
        make_operator(hook).execute(context(try_number=2))
    message = str(info.value)
    assert JOB_NAME in message and status in message and "ClientError: manifest not found" in message
    assert "restart_failed_job" in message


def test_failed_job_is_restarted_under_a_suffixed_name_when_configured(hook, stub):
    described(stub, "Failed", failure_reason="Workers unavailable")
    not_found(stub, NAME_A1)
    stub.add_response(
        "create_labeling_job",
        {"LabelingJobArn": job_arn(NAME_A1)},
        expected_create(NAME_A1, tags=TaskIdentity(DAG_ID, RUN_ID, TASK_ID, -1, 2).tags()),
    )
    described(stub, "Initializing", name=NAME_A1)
    described(stub, "Completed", name=NAME_A1, unlabeled=0, human=100)
    result = make_operator(hook, restart_failed_job=True).execute(context(try_number=2))
    assert result["LabelingJobName"] == NAME_A1 and result["LabelingJobStatus"] == "Completed"


def test_a_later_attempt_of_this_task_is_found_and_reattached(hook, stub):
    described(stub, "Failed", failure_reason="Workers unavailable")
    described(stub, "InProgress", name=NAME_A1)
    described(stub, "Completed", name=NAME_A1, unlabeled=0)
    result = make_operator(hook, restart_failed_job=True).execute(context(try_number=3))
    assert result["LabelingJobName"] == NAME_A1


def test_a_running_later_attempt_wins_even_after_restart_was_switched_off(hook, stub):
    described(stub, "Failed", failure_reason="Workers unavailable")
    described(stub, "Completed", name=NAME_A1, unlabeled=0)
    assert make_operator(hook).execute(context(try_number=4))["LabelingJobName"] == NAME_A1


def test_failing_job_while_waiting_fails_the_task_with_its_reason(hook, stub):
    described(stub, "InProgress")
    described(stub, "Failed", failure_reason="AccessDenied: s3://bucket/run/iteration-1/input.manifest")
    with pytest.raises(AirflowException, match=r"ended with status Failed: AccessDenied"):
        make_operator(hook).execute(context())


# ------------------------------------------------------------------------------------------------ foreign jobs
def test_a_same_named_job_of_another_run_fails_by_default(hook, stub):
    described(stub, "InProgress", tags=OTHER_RUN_TAGS)
    with pytest.raises(AirflowFailException, match="scheduled__2024-01-01") as info:
        make_operator(hook).execute(context())
    assert "action_if_job_exists" in str(info.value)


def test_a_job_without_airflow_tags_is_foreign(hook, stub):
    described(stub, "Completed", tags={"team": "vision"})
    with pytest.raises(AirflowFailException, match="not created by this operator"):
        make_operator(hook).execute(context())


def test_increment_moves_past_a_foreign_job_to_the_next_free_name(hook, stub):
    described(stub, "Completed", tags=OTHER_RUN_TAGS)
    not_found(stub, NAME_A1)
    stub.add_response("create_labeling_job", {"LabelingJobArn": job_arn(NAME_A1)}, expected_create(NAME_A1))
    described(stub, "Initializing", name=NAME_A1)
    result = make_operator(hook, action_if_job_exists="increment", wait_for_completion=False).execute(context())
    assert result["LabelingJobName"] == NAME_A1


def test_increment_reattaches_to_its_own_incremented_job_on_retry(hook, stub):
    described(stub, "Completed", tags=OTHER_RUN_TAGS)
    described(stub, "InProgress", name=NAME_A1)
    result = make_operator(hook, action_if_job_exists="increment", wait_for_completion=False).execute(context())
    assert result["LabelingJobName"] == NAME_A1


def test_same_run_id_in_another_dag_or_map_index_is_foreign(hook, stub):
    described(stub, "InProgress", tags=TaskIdentity(DAG_ID, RUN_ID, TASK_ID, map_index=3).tags())
    with pytest.raises(AirflowFailException, match="already exists"):
        make_operator(hook).execute(context())


# --------------------------------------------------------------------------------------------------------- races
def test_resource_in_use_from_a_crashed_earlier_try_reattaches(hook, stub):
    not_found(stub)
    stub.add_client_error(
        "create_labeling_job", "ResourceInUse", "Job already exists", 400, expected_params=expected_create()
    )
    described(stub, "InProgress")  # the crashed try's job: ours
    described(stub, "Completed", unlabeled=0)
    result = make_operator(hook).execute(context())
    assert result["LabelingJobName"] == JOB_NAME and result["LabelingJobStatus"] == "Completed"


def test_resource_in_use_by_another_run_fails(hook, stub):
    not_found(stub)
    stub.add_client_error(
        "create_labeling_job", "ResourceInUse", "Job already exists", 400, expected_params=expected_create()
    )
    described(stub, "InProgress", tags=OTHER_RUN_TAGS)
    with pytest.raises(AirflowFailException, match="already exists"):
        make_operator(hook).execute(context())


def test_throttled_create_is_retried_and_a_success_hidden_behind_a_timeout_is_reattached(hook, stub):
    not_found(stub)
    stub.add_client_error(
        "create_labeling_job", "ThrottlingException", "Rate exceeded", 400, expected_params=expected_create()
    )
    stub.add_client_error("create_labeling_job", "ResourceInUse", "exists", 400, expected_params=expected_create())
    described(stub, "Initializing")
    result = make_operator(hook, wait_for_completion=False).execute(context())
    assert result["LabelingJobStatus"] == "Initializing"


# ------------------------------------------------------------------------------------------------------ polling
def test_throttling_storm_during_polling_is_survived(hook, stub):
    described(stub, "InProgress")
    for code, status in [("ThrottlingException", 400)] * 5 + [("InternalFailure", 500), ("ServiceUnavailable", 503)]:
        stub.add_client_error("describe_labeling_job", code, "slow down", status)
    described(stub, "InProgress", human=40)
    described(stub, "Completed", unlabeled=0)
    clock = FakeClock()
    result = make_operator(hook, clock=clock).execute(context())
    assert result["LabelingJobStatus"] == "Completed"
    assert len(clock.sleeps) == 9  # one per describe that did not finish the job


def test_max_wait_fails_the_task_but_leaves_the_job_running(hook, stub):
    described(stub, "InProgress")
    described(stub, "InProgress")
    described(stub, "InProgress")
    with pytest.raises(LabelingJobWaitTimeout, match="reattaches"):
        make_operator(hook, max_wait=120).execute(context())


# -------------------------------------------------------------------------------------------------- deferrable
def test_deferrable_path_defers_to_the_trigger(hook, stub):
    not_found(stub)
    stub.add_response("create_labeling_job", {"LabelingJobArn": job_arn(JOB_NAME)}, expected_create())
    described(stub, "Initializing")
    op = make_operator(hook, deferrable=True, check_interval=30, max_wait=3600)
    with pytest.raises(TaskDeferred) as info:
        op.execute(context())
    trigger = info.value.trigger
    assert isinstance(trigger, LabelingJobTrigger)
    assert info.value.method_name == "execute_complete"
    assert (trigger.job_name, trigger.poke_interval, trigger.stop_on_cancel) == (JOB_NAME, 30, True)
    assert trigger.aws_conn_id is None and trigger.region_name == REGION


def test_deferrable_reattach_to_a_completed_job_returns_without_deferring(hook, stub):
    described(stub, "Completed", unlabeled=0)
    result = make_operator(hook, deferrable=True).execute(context())
    assert result["LabelingJobStatus"] == "Completed"


def test_execute_complete_returns_the_same_summary(hook):
    description = describe_response(status="Completed", human=10, unlabeled=0, output_manifest="s3://b/o.manifest")
    event = {"status": "success", "job_name": JOB_NAME, "message": "done", "description": description}
    result = make_operator(hook).execute_complete(context(), event)
    assert result["LabelingJobStatus"] == "Completed" and result["OutputDatasetS3Uri"] == "s3://b/o.manifest"
    json.dumps(result)


def test_execute_complete_failed_event_fails_with_the_reason(hook):
    description = describe_response(status="Failed", failure_reason="Lambda error")
    event = {"status": "failed", "job_name": JOB_NAME, "message": "x", "description": description}
    with pytest.raises(AirflowException, match=f"{JOB_NAME} ended with status Failed: Lambda error"):
        make_operator(hook).execute_complete(context(), event)


@pytest.mark.parametrize(
    ("event", "error", "match"),
    [
        ({"status": "timeout", "job_name": JOB_NAME, "message": "still InProgress"}, LabelingJobWaitTimeout, "still"),
        ({"status": "error", "job_name": JOB_NAME, "message": "AccessDenied"}, AirflowException, "AccessDenied"),
        (None, AirflowException, "without an event"),
    ],
)
def test_execute_complete_other_events_fail(hook, event, error, match):
    with pytest.raises(error, match=match):
        make_operator(hook).execute_complete(context(), event)


# ---------------------------------------------------------------------------------------------------------- kill
class Killed(Exception):
    pass


def test_sigterm_during_a_synchronous_wait_stops_the_job(hook, stub):
    described(stub, "InProgress")
    stub.add_response("stop_labeling_job", {}, {"LabelingJobName": JOB_NAME})
    op = make_operator(hook, ti_state="running")

    def killed_while_sleeping(seconds):
        op.on_kill()  # what the task runner's SIGTERM handler does
        raise Killed

    op._sleep = killed_while_sleeping
    with pytest.raises(Killed):
        op.execute(context())


def test_a_kill_that_stopped_the_job_ends_the_synchronous_wait_at_once(hook, stub):
    described(stub, "InProgress")
    stub.add_response("stop_labeling_job", {}, {"LabelingJobName": JOB_NAME})
    op = make_operator(hook, ti_state="running")
    sleeps: list[float] = []

    def killed_while_sleeping(seconds):
        sleeps.append(seconds)
        op.on_kill()  # what the task runner's SIGTERM handler does; then the handler returns

    op._sleep = killed_while_sleeping
    with pytest.raises(AirflowException, match=f"killed: labeling job {JOB_NAME} stopped"):
        op.execute(context())
    assert sleeps == [60]  # no describe after the stop (the Stubber has none queued)


@pytest.mark.parametrize("state", ["failed", "success", "running", "<unknown>"])
def test_kill_stops_the_job_unless_the_task_was_cleared(hook, stub, state):
    not_found(stub)
    stub.add_response("create_labeling_job", {"LabelingJobArn": job_arn(JOB_NAME)}, expected_create())
    described(stub, "Initializing")
    stub.add_response("stop_labeling_job", {}, {"LabelingJobName": JOB_NAME})
    op = make_operator(hook, ti_state=state, wait_for_completion=False)
    op.execute(context())
    op.on_kill()


@pytest.mark.parametrize("state", ["restarting", None, "scheduled", "queued", "up_for_retry"])
def test_clearing_a_running_task_leaves_the_job_for_the_next_try(hook, stub, state):
    not_found(stub)
    stub.add_response("create_labeling_job", {"LabelingJobArn": job_arn(JOB_NAME)}, expected_create())
    described(stub, "Initializing")
    op = make_operator(hook, ti_state=state, wait_for_completion=False)
    op.execute(context())
    op.on_kill()  # no StopLabelingJob queued: the Stubber would fail if one were sent


def test_kill_does_nothing_when_disabled_or_before_a_job_exists(hook, stub):
    make_operator(hook).on_kill()
    op = make_operator(hook, stop_job_on_kill=False)
    op._job_name = JOB_NAME
    op.on_kill()


# --------------------------------------------------------------------------------------------------- identities
def test_unusual_run_ids_are_sanitized_in_tags_but_matched_exactly():
    a = TaskIdentity(DAG_ID, "manual~run#1", TASK_ID)
    b = TaskIdentity(DAG_ID, "manual_run_1", TASK_ID)
    assert a.tags()["airflow:run_id"] == b.tags()["airflow:run_id"] == "manual_run_1"
    assert a.key != b.key and not a.owns(b.tags()) and a.owns(a.tags())
    assert len(tag_value("x" * 1000)) == 256


def test_invalid_action_if_job_exists_is_rejected():
    with pytest.raises(ValueError, match="action_if_job_exists"):
        CreateLabelingJobOperator(task_id="t", config={}, action_if_job_exists="timestamp")


def test_template_fields_and_defaults_follow_the_provider():
    op = CreateLabelingJobOperator(task_id="t", config={})
    assert "config" in op.template_fields and "aws_conn_id" in op.template_fields
    assert op.deferrable is True and op.wait_for_completion is True and op.aws_conn_id == "aws_default"
    assert op.max_wait_seconds == 30 * 86400 and op.action_if_job_exists == "fail" and op.stop_job_on_kill is True


# -------------------------------------------------------------------------------------------------- openlineage
def test_openlineage_is_optional(hook):
    assert make_operator(hook).get_openlineage_facets_on_complete(None) is None


def test_openlineage_reports_the_manifests_when_the_provider_is_present(hook, monkeypatch):
    class OperatorLineage:
        def __init__(self, inputs, outputs):
            self.inputs, self.outputs = inputs, outputs

    class Dataset:
        def __init__(self, namespace, name):
            self.namespace, self.name = namespace, name

    extractors = types.ModuleType("airflow.providers.openlineage.extractors")
    extractors.OperatorLineage = OperatorLineage
    facet = types.ModuleType("airflow.providers.common.compat.openlineage.facet")
    facet.Dataset = Dataset
    monkeypatch.setitem(sys.modules, "airflow.providers.openlineage", types.ModuleType("airflow.providers.openlineage"))
    monkeypatch.setitem(sys.modules, "airflow.providers.openlineage.extractors", extractors)
    monkeypatch.setitem(sys.modules, "airflow.providers.common.compat.openlineage.facet", facet)
    op = make_operator(hook)
    op._last_description = describe_response(status="Completed", output_manifest="s3://bucket/out/job/output.manifest")
    lineage = op.get_openlineage_facets_on_complete(None)
    assert [(d.namespace, d.name) for d in lineage.inputs] == [("s3://bucket", "run/iteration-1/input.manifest")]
    assert [(d.namespace, d.name) for d in lineage.outputs] == [("s3://bucket", "out/job/output.manifest")]


def test_lineage_of_an_unfinished_job_has_no_output():
    inputs, outputs = lineage_locations(describe_response(status="InProgress"))
    assert inputs == [("s3://bucket", "run/iteration-1/input.manifest")] and outputs == []
