"""The labeling-job operations over the wire: validation, errors, lifecycle, listing, tags, failures, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from emulator.clock import SimClock
from tests.emulator.helpers import REGION, prepare_experiment, request, unique, wait_for_job

BUCKET = "api-tests"


@pytest.fixture(scope="module")
def small(s3, bird_keys):
    """A 30-image experiment: too small for auto-labeling, so humans label it all (fast)."""
    return prepare_experiment(s3, BUCKET, bird_keys[:30])


def error_code(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


def test_create_describe_and_complete_a_human_only_job(sagemaker, backend, small, s3):
    name = unique("Human-Only")
    arn = sagemaker.create_labeling_job(**request(name, small, auto_labeling=False))["LabelingJobArn"]
    assert arn == f"arn:aws:sagemaker:{REGION}:123456789012:labeling-job/{name.lower()}"
    desc = wait_for_job(sagemaker, name, backend)
    assert desc["LabelingJobStatus"] == "Completed", desc.get("FailureReason")
    assert desc["LabelCounters"] == {
        "TotalLabeled": 30,
        "HumanLabeled": 30,
        "MachineLabeled": 0,
        "FailedNonRetryableError": 0,
        "Unlabeled": 0,
    }
    assert "FinalActiveLearningModelArn" not in desc["LabelingJobOutput"]
    out = desc["LabelingJobOutput"]["OutputDatasetS3Uri"]
    assert out == f"{small['output']}{name}/manifests/output/output.manifest"
    bucket, key = out[5:].split("/", 1)
    lines = [json.loads(x) for x in s3.get_object(Bucket=bucket, Key=key)["Body"].read().splitlines()]
    assert len(lines) == 30
    for line in lines:
        meta = line["category-metadata"]
        assert meta["human-annotated"] == "yes" and meta["type"] == "groundtruth/object-detection"
        assert len(meta["objects"]) == len(line["category"]["annotations"])
        assert line["category"]["image_size"][0]["depth"] == 3
    assert desc["CreationTime"] < desc["LastModifiedTime"]


def test_duplicate_names_are_refused_case_insensitively(sagemaker, small):
    name = unique("Dup")
    sagemaker.create_labeling_job(**request(name, small, auto_labeling=False))
    with pytest.raises(ClientError) as err:
        sagemaker.create_labeling_job(**request(name.upper(), small, auto_labeling=False))
    assert error_code(err) == "ResourceInUse"


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda r: r.update(LabelingJobName="bad_name!"), "LabelingJobName"),
        (
            lambda r: r["HumanTaskConfig"].update(NumberOfHumanWorkersPerDataObject=10),
            "HumanTaskConfig.NumberOfHumanWorkersPerDataObject",
        ),
        (lambda r: r["HumanTaskConfig"].update(TaskTimeLimitInSeconds=10), "HumanTaskConfig.TaskTimeLimitInSeconds"),
        (lambda r: r["HumanTaskConfig"].update(TaskTitle="x" * 129), "HumanTaskConfig.TaskTitle"),
        (lambda r: r.update(LabelAttributeName="category-metadata"), "LabelAttributeName: must not end in '-metadata'"),
    ],
)
def test_invalid_requests_get_validation_exception_naming_the_field(sagemaker, small, mutate, field):
    req = request(unique("bad"), small)
    mutate(req)
    raw = _raw_call(sagemaker, "CreateLabelingJob", req)
    assert raw["status"] == 400
    assert raw["body"]["__type"] == "ValidationException"
    assert field in raw["body"]["message"]


def test_missing_required_member_is_a_validation_error(sagemaker, small):
    req = request(unique("norole"), small)
    del req["RoleArn"]
    raw = _raw_call(sagemaker, "CreateLabelingJob", req)
    assert raw["body"]["__type"] == "ValidationException"
    assert "RoleArn: required" in raw["body"]["message"]


def _raw_call(client, operation: str, body: dict) -> dict:
    """Send a request boto3 itself would refuse client-side, to see the server's own validation."""
    import urllib.request

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    url = client.meta.endpoint_url
    req = AWSRequest(
        method="POST",
        url=url + "/",
        data=json.dumps(body),
        headers={"X-Amz-Target": f"SageMaker.{operation}", "Content-Type": "application/x-amz-json-1.1"},
    )
    SigV4Auth(client._request_signer._credentials, "sagemaker", REGION).add_auth(req)
    http = urllib.request.Request(url + "/", data=req.body, headers=dict(req.headers), method="POST")
    try:
        with urllib.request.urlopen(http, timeout=30) as resp:
            return {"status": resp.status, "body": json.loads(resp.read())}
    except urllib.error.HTTPError as err:
        return {"status": err.code, "body": json.loads(err.read())}


def test_unknown_job_is_resource_not_found(sagemaker):
    with pytest.raises(ClientError) as err:
        sagemaker.describe_labeling_job(LabelingJobName="no-such-job")
    assert error_code(err) == "ResourceNotFound"
    with pytest.raises(ClientError) as err:
        sagemaker.stop_labeling_job(LabelingJobName="no-such-job")
    assert error_code(err) == "ResourceNotFound"


def test_list_filters_sorts_and_paginates(sagemaker, backend, small):
    tag = unique("listing")
    names = [f"{tag}-{c}" for c in "cab"]
    for name in names:
        sagemaker.create_labeling_job(**request(name, small, auto_labeling=False))
    for name in names:
        wait_for_job(sagemaker, name, backend)
    paginator = sagemaker.get_paginator("list_labeling_jobs")
    pages = list(paginator.paginate(NameContains=tag, SortBy="Name", SortOrder="Ascending", MaxResults=2))
    assert [len(p["LabelingJobSummaryList"]) for p in pages] == [2, 1]
    listed = [s["LabelingJobName"] for p in pages for s in p["LabelingJobSummaryList"]]
    assert listed == sorted(names)
    summary = pages[0]["LabelingJobSummaryList"][0]
    assert summary["LabelingJobStatus"] == "Completed" and summary["WorkteamArn"].endswith("public-crowd/default")
    assert not sagemaker.list_labeling_jobs(NameContains=tag, StatusEquals="InProgress")["LabelingJobSummaryList"]
    desc = sagemaker.list_labeling_jobs(NameContains=tag, SortBy="CreationTime", SortOrder="Descending")
    assert [s["LabelingJobName"] for s in desc["LabelingJobSummaryList"]] == names[::-1]


def test_tags_are_stored_and_returned(sagemaker, small):
    name = unique("tagged")
    arn = sagemaker.create_labeling_job(
        **request(name, small, auto_labeling=False, Tags=[{"Key": "airflow:dag_id", "Value": "d"}])
    )["LabelingJobArn"]
    sagemaker.add_tags(ResourceArn=arn, Tags=[{"Key": "airflow:try", "Value": "2"}])
    tags = {t["Key"]: t["Value"] for t in sagemaker.list_tags(ResourceArn=arn)["Tags"]}
    assert tags == {"airflow:dag_id": "d", "airflow:try": "2"}
    described = {t["Key"] for t in sagemaker.describe_labeling_job(LabelingJobName=name)["Tags"]}
    assert described == {"airflow:dag_id", "airflow:try"}


@pytest.mark.parametrize(
    ("what", "expected"),
    [
        ("manifest", "input manifest"),
        ("template", "UiTemplateS3Uri"),
        ("labels", "LabelCategoryConfigS3Uri"),
        ("image", "could not be read"),
        ("model", "InitialActiveLearningModelArn"),
    ],
)
def test_real_causes_fail_the_job_with_a_reason(sagemaker, backend, s3, small, bird_keys, what, expected):
    uris = dict(small)
    model = None
    if what in ("manifest", "template", "labels"):
        uris[what] = uris[what].replace("s3://api-tests/", "s3://api-tests/missing/")
    elif what == "image":
        uris = prepare_experiment(s3, BUCKET, bird_keys[:3])
        bucket, key = uris["manifest"][5:].split("/", 1)
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read() + b'{"source-ref": "s3://api-tests/nope.jpg"}\n'
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    else:
        model = f"arn:aws:sagemaker:{REGION}:123456789012:model/does-not-exist"
    name = unique(f"fail-{what}")
    sagemaker.create_labeling_job(**request(name, uris, auto_labeling=model is not None, initial_model=model))
    desc = wait_for_job(sagemaker, name, backend)
    assert desc["LabelingJobStatus"] == "Failed"
    assert expected in desc["FailureReason"]


class GatedClock(SimClock):
    """Lets the first `free` waits pass at once, then holds the job until it is stopped (no wall-clock sleeps)."""

    def __init__(self, free: int) -> None:
        super().__init__(1e9)
        self.free = free
        self.held = threading.Event()

    def wait(self, sim_seconds, interrupt):
        if self.free > 0:
            self.free -= 1
            return interrupt.is_set()
        self.held.set()
        return interrupt.wait(timeout=120)


def test_stop_mid_run_ends_stopped_with_partial_outputs(sagemaker, backend, s3, small):
    clock, backend.clock = backend.clock, GatedClock(free=3)  # initializing, probe batch, second batch
    try:
        name = unique("stopme")
        sagemaker.create_labeling_job(
            **request(
                name,
                small,
                auto_labeling=False,
                HumanTaskConfig={**request(name, small)["HumanTaskConfig"], "MaxConcurrentTaskCount": 5},
            )
        )
        assert backend.clock.held.wait(60)
        running = sagemaker.describe_labeling_job(LabelingJobName=name)
        assert running["LabelingJobStatus"] == "InProgress"
        assert running["LabelCounters"]["HumanLabeled"] == 15  # probe of 10, then one batch of 5
        sagemaker.stop_labeling_job(LabelingJobName=name)
        desc = wait_for_job(sagemaker, name, backend)
    finally:
        backend.clock = clock
    assert desc["LabelingJobStatus"] == "Stopped"
    assert desc["LabelCounters"]["HumanLabeled"] == 15 and desc["LabelCounters"]["Unlabeled"] == 15
    bucket, key = desc["LabelingJobOutput"]["OutputDatasetS3Uri"][5:].split("/", 1)
    assert len(s3.get_object(Bucket=bucket, Key=key)["Body"].read().splitlines()) == 15


def test_injected_job_failure_point(sagemaker, backend, small, emulator):
    from emulator.faults import FaultConfig

    name = unique("doomed")
    emulator.app.faults.configure(FaultConfig(fail_job_name_contains=name, fail_job_at="human"))
    try:
        sagemaker.create_labeling_job(**request(name, small, auto_labeling=False))
        desc = wait_for_job(sagemaker, name, backend)
    finally:
        emulator.app.faults.configure(FaultConfig())
    assert desc["LabelingJobStatus"] == "Failed" and "injected failure during human" in desc["FailureReason"]


def test_aws_cli_drives_all_four_operations(emulator, backend, sagemaker, small, tmp_path):
    aws = str(Path(sys.executable).parent / "aws")
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }

    def cli(*args: str) -> dict:
        out = subprocess.run(
            [aws, "sagemaker", *args, "--endpoint-url", emulator.url, "--output", "json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return json.loads(out.stdout) if out.stdout.strip() else {}

    name = unique("cli")
    spec = tmp_path / "job.json"
    spec.write_text(json.dumps(request(name, small, auto_labeling=False)))
    assert cli("create-labeling-job", "--cli-input-json", f"file://{spec}")["LabelingJobArn"].endswith(name.lower())
    listed = cli("list-labeling-jobs", "--name-contains", name)["LabelingJobSummaryList"]
    assert [s["LabelingJobName"] for s in listed] == [name]
    cli("stop-labeling-job", "--labeling-job-name", name)
    wait_for_job(sagemaker, name, backend)
    assert cli("describe-labeling-job", "--labeling-job-name", name)["LabelingJobStatus"] in ("Stopped", "Completed")
