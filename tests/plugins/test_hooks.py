"""LabelingJobHook against a botocore Stubber, and the pure helpers the operator, sensor and trigger share."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import EndpointConnectionError, WaiterError

from groundtruth.aws_errors import backoff_delay, is_not_found_error, is_transient_error
from groundtruth.descriptions import percent_done, progress_message, summarize_labeling_job
from groundtruth.hooks import LabelingJobHook, LabelingJobWaitTimeout, pooled_client
from tests.plugins.fakes import (
    JOB_NAME,
    REGION,
    WORKTEAM_ARN,
    FakeClock,
    client_error,
    describe_response,
    job_arn,
    job_request,
)


# --------------------------------------------------------------------------------------------------------- config
def test_client_retries_adaptively_by_default():
    hook = LabelingJobHook(aws_conn_id=None, region_name=REGION)
    assert hook.config.retries == {"mode": "adaptive", "max_attempts": 12}
    assert hook.conn.meta.config.retries["mode"] == "adaptive"


def test_caller_botocore_config_wins_key_by_key():
    hook = LabelingJobHook(
        aws_conn_id=None, region_name=REGION, config={"retries": {"mode": "standard", "max_attempts": 3}}
    )
    assert hook.config.retries == {"mode": "standard", "max_attempts": 3}
    assert hook.config.connect_timeout == 10  # our default for what the caller left unset


@pytest.mark.parametrize(("pool", "expected"), [(32, 32), (4, 10)])
def test_pooled_client_holds_a_connection_per_thread_and_retries_adaptively(pool, expected):
    client = pooled_client(None, REGION, "s3", pool)
    assert client.meta.config.max_pool_connections == expected
    assert client.meta.config.retries["mode"] == "adaptive"
    assert client.meta.region_name == REGION


# ------------------------------------------------------------------------------------------------------ sync calls
def test_find_returns_none_for_a_missing_job(hook, stub):
    stub.add_client_error("describe_labeling_job", "ResourceNotFound", "Could not find job", 400)
    assert hook.find_labeling_job(JOB_NAME) is None


def test_find_treats_validation_not_found_as_missing_but_other_errors_raise(hook, stub):
    stub.add_client_error("describe_labeling_job", "ValidationException", "Requested resource not found.")
    stub.add_client_error("describe_labeling_job", "AccessDeniedException", "no")
    assert hook.find_labeling_job(JOB_NAME) is None
    with pytest.raises(Exception, match="AccessDenied"):
        hook.find_labeling_job(JOB_NAME)


def test_create_sends_the_request(hook, stub):
    full = job_request()
    stub.add_response("create_labeling_job", {"LabelingJobArn": job_arn(JOB_NAME)}, full)
    assert hook.create_labeling_job(full)["LabelingJobArn"] == job_arn(JOB_NAME)


def test_stop_reports_whether_there_was_anything_to_stop(hook, stub):
    stub.add_response("stop_labeling_job", {}, {"LabelingJobName": JOB_NAME})
    stub.add_client_error("stop_labeling_job", "ValidationException", "Job is already Completed")
    stub.add_client_error("stop_labeling_job", "ResourceNotFound", "gone")
    assert hook.stop_labeling_job(JOB_NAME) is True
    assert hook.stop_labeling_job(JOB_NAME) is False
    assert hook.stop_labeling_job(JOB_NAME) is False


def _summary(name: str, status: str = "InProgress") -> dict:
    d = describe_response(name, status)
    keys = ("LabelingJobName", "LabelingJobArn", "CreationTime", "LastModifiedTime", "LabelingJobStatus")
    return {k: d[k] for k in keys} | {"LabelCounters": d["LabelCounters"], "WorkteamArn": WORKTEAM_ARN}


def test_list_follows_next_token(hook, stub):
    stub.add_response(
        "list_labeling_jobs",
        {"LabelingJobSummaryList": [_summary("a"), _summary("b")], "NextToken": "t1"},
        {"NameContains": "bird", "MaxResults": 100},
    )
    stub.add_response(
        "list_labeling_jobs",
        {"LabelingJobSummaryList": [_summary("c")]},
        {"NameContains": "bird", "MaxResults": 100, "NextToken": "t1"},
    )
    jobs = hook.list_labeling_jobs(name_contains="bird")
    assert [j["LabelingJobName"] for j in jobs] == ["a", "b", "c"]


def test_list_stops_at_max_results(hook, stub):
    stub.add_response(
        "list_labeling_jobs",
        {"LabelingJobSummaryList": [_summary("a"), _summary("b")], "NextToken": "t1"},
        {"MaxResults": 2, "StatusEquals": "InProgress"},
    )
    assert len(hook.list_labeling_jobs(max_results=2, StatusEquals="InProgress")) == 2


def test_tags_come_from_describe_or_from_list_tags(hook, stub):
    arn = job_arn(JOB_NAME)
    stub.add_response(
        "list_tags", {"Tags": [{"Key": "a", "Value": "1"}], "NextToken": "n"}, {"ResourceArn": arn, "MaxResults": 100}
    )
    stub.add_response(
        "list_tags", {"Tags": [{"Key": "b", "Value": "2"}]}, {"ResourceArn": arn, "MaxResults": 100, "NextToken": "n"}
    )
    assert hook.job_tags(describe_response(tags={"x": "y"})) == {"x": "y"}
    assert hook.job_tags(describe_response()) == {"a": "1", "b": "2"}


def test_add_tags_accepts_a_dict(hook, stub):
    arn = job_arn(JOB_NAME)
    stub.add_response("add_tags", {"Tags": []}, {"ResourceArn": arn, "Tags": [{"Key": "k", "Value": "v"}]})
    hook.add_tags(arn, {"k": "v"})


# ---------------------------------------------------------------------------------------------------------- waiter
def test_waiter_keeps_waiting_through_initializing_throttling_and_stopping(hook, stub):
    params = {"LabelingJobName": JOB_NAME}
    stub.add_response("describe_labeling_job", describe_response(status="Initializing"), params)
    stub.add_client_error("describe_labeling_job", "ThrottlingException", "Rate exceeded")
    stub.add_client_error("describe_labeling_job", "InternalFailure", "oops", 500)
    stub.add_response("describe_labeling_job", describe_response(status="InProgress"), params)
    stub.add_response("describe_labeling_job", describe_response(status="Completed"), params)
    waiter = hook.get_waiter("labeling_job_complete")
    waiter.wait(LabelingJobName=JOB_NAME, WaiterConfig={"Delay": 0, "MaxAttempts": 10})


@pytest.mark.parametrize("status", ["Failed", "Stopped"])
def test_waiter_fails_on_failed_and_stopped(hook, stub, status):
    stub.add_response("describe_labeling_job", describe_response(status=status, failure_reason="bad manifest"))
    with pytest.raises(WaiterError):
        hook.get_waiter("LabelingJobComplete").wait(LabelingJobName=JOB_NAME, WaiterConfig={"Delay": 0})


def test_waiter_file_lists_every_status():
    config = json.loads(LabelingJobHook(aws_conn_id=None, region_name=REGION).waiter_path.read_text())
    acceptors = config["waiters"]["LabelingJobComplete"]["acceptors"]
    states = {a["expected"]: a["state"] for a in acceptors if a["matcher"] == "path"}
    assert states == {
        "Completed": "success",
        "Failed": "failure",
        "Stopped": "failure",
        "Initializing": "retry",
        "InProgress": "retry",
        "Stopping": "retry",
    }


# ---------------------------------------------------------------------------------------------------- wait loop
def test_wait_survives_a_throttling_storm_and_returns_the_final_description(hook, stub):
    clock = FakeClock()
    stub.add_response("describe_labeling_job", describe_response(status="Initializing"))
    for _ in range(6):
        stub.add_client_error("describe_labeling_job", "ThrottlingException", "Rate exceeded")
    stub.add_client_error("describe_labeling_job", "ServiceUnavailable", "try later", 503)
    stub.add_response("describe_labeling_job", describe_response(status="InProgress", human=10, unlabeled=90))
    stub.add_response("describe_labeling_job", describe_response(status="Completed", human=60, machine=40, unlabeled=0))
    final = hook.wait_for_labeling_job(
        JOB_NAME, check_interval=60, max_wait=86400, sleep=clock.sleep, clock=clock, rand=lambda a, b: b
    )
    assert final["LabelingJobStatus"] == "Completed"
    # One regular interval, then growing backoff (capped), then regular intervals again.
    assert clock.sleeps[0] == 60
    backoffs = clock.sleeps[1:8]
    assert backoffs == sorted(backoffs) and backoffs[0] == 5.0 and max(backoffs) <= 300
    assert clock.sleeps[8:] == [60]


def test_wait_gives_up_after_max_wait_without_stopping_the_job(hook, stub):
    clock = FakeClock()
    for _ in range(3):
        stub.add_response("describe_labeling_job", describe_response(status="InProgress"))
    with pytest.raises(LabelingJobWaitTimeout, match="keeps running"):
        hook.wait_for_labeling_job(JOB_NAME, check_interval=60, max_wait=120, sleep=clock.sleep, clock=clock)
    assert clock.sleeps == [60, 60]


def test_wait_returns_failed_jobs_for_the_caller_to_judge(hook, stub):
    stub.add_response("describe_labeling_job", describe_response(status="Failed", failure_reason="No workers"))
    final = hook.wait_for_labeling_job(JOB_NAME, sleep=lambda s: None)
    assert final["FailureReason"] == "No workers"


def test_wait_raises_when_the_job_vanishes(hook, stub):
    stub.add_client_error("describe_labeling_job", "ResourceNotFound", "gone")
    with pytest.raises(Exception, match="no longer exists"):
        hook.wait_for_labeling_job(JOB_NAME, sleep=lambda s: None)


def test_retry_transient_retries_only_transient_errors(hook):
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise client_error("ThrottlingException")
        return "ok"

    sleeps: list[float] = []
    assert hook.retry_transient(flaky, what="x", sleep=sleeps.append, rand=lambda a, b: a) == "ok"
    assert len(sleeps) == 2
    with pytest.raises(Exception, match="AccessDenied"):
        hook.retry_transient(lambda: (_ for _ in ()).throw(client_error("AccessDenied")), what="x", sleep=sleeps.append)


# ------------------------------------------------------------------------------------------------------ helpers
@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (client_error("ThrottlingException"), True),
        (client_error("Throttling"), True),
        (client_error("SlowDown", status=503), True),
        (client_error("Whatever", status=502), True),
        (client_error("InternalFailure", status=500), True),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), True),
        (client_error("ValidationException"), False),
        (client_error("ResourceNotFound"), False),
        (client_error("ResourceInUse"), False),
    ],
)
def test_transient_errors_are_recognised(error, transient):
    assert is_transient_error(error) is transient


def test_not_found_errors_are_recognised():
    assert is_not_found_error(client_error("ResourceNotFound"))
    assert is_not_found_error(client_error("ValidationException", "Job foo does not exist"))
    assert not is_not_found_error(client_error("ValidationException", "1 validation error detected"))


def test_backoff_grows_is_capped_and_jittered():
    low = [backoff_delay(n, base=2, cap=300, rand=lambda a, b: a) for n in range(12)]
    high = [backoff_delay(n, base=2, cap=300, rand=lambda a, b: b) for n in range(12)]
    assert low[:4] == [1, 2, 4, 8] and high[:4] == [2, 4, 8, 16]
    assert max(high) == 300 and min(low[-3:]) == 150


def test_summary_is_json_safe_complete_and_idempotent():
    description = describe_response(
        status="Completed",
        human=651,
        machine=599,
        unlabeled=0,
        output_manifest="s3://bucket/out/job/manifests/output/output.manifest",
        final_model_arn="arn:aws:sagemaker:us-east-1:123456789012:model/final",
    )
    summary = summarize_labeling_job(description)
    json.dumps(summary)
    assert summary["LabelingJobStatus"] == summary["status"] == "Completed"
    assert summary["OutputDatasetS3Uri"] == summary["output_manifest_s3_uri"]
    assert summary["FinalActiveLearningModelArn"] == "arn:aws:sagemaker:us-east-1:123456789012:model/final"
    assert summary["LabelCounters"]["MachineLabeled"] == summary["machine_labeled"] == 599
    assert summary["InputManifestS3Uri"] == "s3://bucket/run/iteration-1/input.manifest"
    assert summary["CreationTime"] == "2024-05-17T01:23:45+00:00"
    assert summarize_labeling_job(summary) == summary


def test_progress_message_counts_and_percent():
    description = describe_response(status="InProgress", human=30, machine=20, failed=10, unlabeled=140)
    assert percent_done(description) == 30.0
    message = progress_message(description)
    assert "InProgress" in message and "30 human-labeled" in message and "20 machine-labeled" in message
    assert "140 unlabeled" in message and "30.0% done" in message
    assert percent_done(describe_response(status="Initializing", unlabeled=0)) == 0.0
