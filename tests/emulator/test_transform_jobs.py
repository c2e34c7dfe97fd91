"""Batch-transform jobs through the endpoint with small script-mode models written here (code/inference.py inside
the artifact): refusals at create, per-record failures, a model that crashes or hangs, stop, faults, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.emulator.training_helpers import (
    ROLE,
    ensure_bucket,
    tarball,
    unique,
    wait_for_log_line,
    wait_transform,
)

BUCKET = "transform-tests"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-inference:latest"

# Doubles "x"; a record with "boom" raises, one with "hang" never answers, "short" drops a line of its batch.
INFERENCE_PY = """
import json, sys, threading

def model_fn(model_dir):
    return json.load(open(f"{model_dir}/factor.json"))["factor"]

def transform_fn(factor, body, content_type, accept):
    out = []
    for line in body.splitlines():
        record = json.loads(line)
        if record.get("boom"):
            raise RuntimeError(f"cannot score record {record['id']}")
        if record.get("hang"):
            print("hanging on a record", flush=True)
            threading.Event().wait()
        if record.get("short"):
            continue
        out.append(json.dumps({"y": record["x"] * factor}))
    return "\\n".join(out) + "\\n", accept
"""


@pytest.fixture(scope="module")
def model(sagemaker, s3):
    ensure_bucket(s3, BUCKET)
    prefix = unique("doubler")
    artifact = tarball({"factor.json": json.dumps({"factor": 2}), "code/inference.py": INFERENCE_PY})
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/model.tar.gz", Body=artifact)
    name = unique("doubler")
    sagemaker.create_model(
        ModelName=name,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": f"s3://{BUCKET}/{prefix}/model.tar.gz"},
    )
    return {"name": name, "prefix": prefix}


def _transform(model: dict, records: list[dict], strategy: str = "MultiRecord", **extra) -> dict:
    return {
        "TransformJobName": unique("doubler-job"),
        "ModelName": model["name"],
        "BatchStrategy": strategy,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/{model['input']}"}},
            "ContentType": "application/jsonlines",
            "SplitType": "Line",
        },
        "TransformOutput": {
            "S3OutputPath": f"s3://{BUCKET}/{model['input']}-out",
            "Accept": "application/jsonlines",
            "AssembleWith": "Line",
        },
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
        **extra,
    }


def _put_input(s3, model: dict, records: list[dict]) -> dict:
    key = f"{model['prefix']}/{unique('in')}"
    s3.put_object(Bucket=BUCKET, Key=f"{key}/records.jsonl", Body="".join(json.dumps(r) + "\n" for r in records))
    return {**model, "input": key}


def _outputs(s3, job: dict) -> list[dict]:
    out = job["TransformOutput"]["S3OutputPath"][len(f"s3://{BUCKET}/") :]
    body = s3.get_object(Bucket=BUCKET, Key=f"{out}/records.jsonl.out")["Body"].read().decode()
    return [json.loads(line) for line in body.splitlines()]


def test_input_and_output_filters_select_and_join_in_input_order(sagemaker, s3, model):
    records = [{"id": i, "x": i, "note": "n"} for i in range(25)]
    job = _transform(
        _put_input(s3, model, records),
        records,
        strategy="SingleRecord",
        DataProcessing={
            "InputFilter": "$['id','x']",
            "JoinSource": "Input",
            "OutputFilter": "$['id','note','SageMakerOutput']",
        },
    )
    sagemaker.create_transform_job(**job)
    assert wait_transform(sagemaker, job["TransformJobName"])["TransformJobStatus"] == "Completed"
    # The join is with the whole input record ("note" was filtered out of what the model saw, not of the join).
    assert _outputs(s3, job) == [{"id": i, "note": "n", "SageMakerOutput": {"y": 2 * i}} for i in range(25)]


def test_unsupported_jsonpath_and_missing_model_are_refused_at_create(sagemaker, s3, model):
    job = _transform(
        _put_input(s3, model, [{"id": 1, "x": 1}]), [], DataProcessing={"OutputFilter": "$..SageMakerOutput[0]"}
    )
    with pytest.raises(ClientError) as err:
        sagemaker.create_transform_job(**job)
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert "DataProcessing.OutputFilter" in err.value.response["Error"]["Message"]
    del job["DataProcessing"]
    job["ModelName"] = unique("no-such-model")
    with pytest.raises(ClientError) as missing:
        sagemaker.create_transform_job(**job)
    assert "Could not find model" in missing.value.response["Error"]["Message"]


def test_a_record_the_model_cannot_score_fails_the_job_naming_it(sagemaker, s3, model):
    records = [{"id": 0, "x": 1}, {"id": 1, "x": 2, "boom": True}, {"id": 2, "x": 3}]
    job = _transform(_put_input(s3, model, records), records, strategy="SingleRecord")
    sagemaker.create_transform_job(**job)
    desc = wait_transform(sagemaker, job["TransformJobName"])
    assert desc["TransformJobStatus"] == "Failed"
    assert "RuntimeError: cannot score record 1" in desc["FailureReason"]
    assert "records.jsonl record 2" in desc["FailureReason"]


def test_a_batch_answered_with_too_few_lines_fails_instead_of_losing_a_record(sagemaker, s3, model):
    records = [{"id": i, "x": i, "short": i == 3} for i in range(6)]
    job = _transform(_put_input(s3, model, records), records, strategy="MultiRecord")
    sagemaker.create_transform_job(**job)
    desc = wait_transform(sagemaker, job["TransformJobName"])
    assert desc["TransformJobStatus"] == "Failed"
    assert "answered 5 records for a batch of 6" in desc["FailureReason"]


def test_stop_transform_job_mid_run_kills_a_hanging_model(sagemaker, s3, boto_session, emulator, model):
    records = [{"id": 0, "x": 1}, {"id": 1, "x": 2, "hang": True}]
    job = _transform(_put_input(s3, model, records), records, strategy="SingleRecord")
    sagemaker.create_transform_job(**job)
    logs = boto_session.client("logs", endpoint_url=emulator.url)
    wait_for_log_line(logs, "/aws/sagemaker/TransformJobs", f"{job['TransformJobName']}/", "hanging on a record")
    sagemaker.stop_transform_job(TransformJobName=job["TransformJobName"])
    desc = wait_transform(sagemaker, job["TransformJobName"])
    assert desc["TransformJobStatus"] == "Stopped"


def test_injected_fault_fails_a_transform_job_and_the_cli_lists_it(sagemaker, s3, emulator, model):
    def set_faults(rule: dict) -> None:
        request = urllib.request.Request(f"{emulator.url}/_emulator/faults", data=json.dumps(rule).encode())
        urllib.request.urlopen(request).read()

    records = [{"id": 0, "x": 1}]
    job = _transform(_put_input(s3, model, records), records)
    job["TransformJobName"] = unique("faulty-transform")
    set_faults({"fail_transform_job_name_contains": "faulty-transform", "fail_transform_job_at": "uploading"})
    try:
        sagemaker.create_transform_job(**job)
        desc = wait_transform(sagemaker, job["TransformJobName"])
    finally:
        set_faults({})
    assert desc["TransformJobStatus"] == "Failed"
    assert "injected failure during uploading" in desc["FailureReason"]

    aws = str(Path(sys.executable).with_name("aws"))
    listed = subprocess.run(
        [aws, "sagemaker", "list-transform-jobs", "--name-contains", job["TransformJobName"], "--status-equals",
         "Failed", "--endpoint-url", emulator.url, "--output", "json"],
        check=True, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    summaries = json.loads(listed.stdout)["TransformJobSummaries"]
    assert [(s["TransformJobName"], s["TransformJobStatus"]) for s in summaries] == [
        (job["TransformJobName"], "Failed")
    ]
