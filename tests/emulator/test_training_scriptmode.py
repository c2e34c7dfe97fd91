"""Script-mode training jobs, models and transforms through the endpoint, with a small model written here: a
nearest-centroid classifier in numpy, saved as JSON, served through model_fn / input_fn / predict_fn / output_fn."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.emulator.training_helpers import (
    INFERENCE_PY,
    ROLE,
    SCRIPT_IMAGE,
    TRAIN_PY,
    centroid_points,
    ensure_bucket,
    read_tarball,
    script_job,
    tarball,
    unique,
    wait_for_log_line,
    wait_for_secondary_status,
    wait_training,
    wait_transform,
)

BUCKET = "script-mode-tests"


@pytest.fixture(scope="module")
def experiment(s3):
    ensure_bucket(s3, BUCKET)
    prefix = unique("centroid")
    rng = np.random.default_rng(7)
    train = centroid_points(rng, 300)
    for part in range(2):
        body = "".join(json.dumps(r) + "\n" for r in train[part::2])
        s3.put_object(Bucket=BUCKET, Key=f"{prefix}/train/part-{part}.jsonl", Body=body)
    source = tarball({"train.py": TRAIN_PY, "inference.py": INFERENCE_PY})
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/code/sourcedir.tar.gz", Body=source)
    return {
        "prefix": prefix,
        "source": f"s3://{BUCKET}/{prefix}/code/sourcedir.tar.gz",
        "train": f"s3://{BUCKET}/{prefix}/train/",
        "output": f"s3://{BUCKET}/{prefix}/output",
        "test": centroid_points(np.random.default_rng(8), 90),
    }


def _source_with(s3, prefix: str, train_py: str) -> str:
    key = f"{prefix}/code-{unique('v')}/sourcedir.tar.gz"
    s3.put_object(Bucket=BUCKET, Key=key, Body=tarball({"train.py": train_py}))
    return f"s3://{BUCKET}/{key}"


def test_script_mode_train_model_and_transform_round_trip(sagemaker, s3, boto_session, emulator, experiment):
    name = unique("centroid-train")
    sagemaker.create_training_job(
        **script_job(name, experiment["source"], {"train": experiment["train"]}, experiment["output"], shrink=0.0)
    )
    desc = wait_training(sagemaker, name)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    assert [t["Status"] for t in desc["SecondaryStatusTransitions"]] == [
        "Starting",
        "Downloading",
        "Training",
        "Uploading",
        "Completed",
    ]
    assert desc["TrainingStartTime"] <= desc["TrainingEndTime"]
    artifact = desc["ModelArtifacts"]["S3ModelArtifacts"]
    assert artifact == f"{experiment['output']}/{name}/output/model.tar.gz"
    key = artifact.split(f"s3://{BUCKET}/", 1)[1]
    centroids = json.loads(read_tarball(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())["model.json"])
    assert sorted(centroids["centroids"]) == ["a", "b", "c"]
    accuracy = read_tarball(
        s3.get_object(Bucket=BUCKET, Key=key.replace("model.tar.gz", "output.tar.gz"))["Body"].read()
    )
    assert float(accuracy["accuracy.txt"]) > 0.9

    logs = boto_session.client("logs", endpoint_url=emulator.url)
    streams = logs.describe_log_streams(logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=f"{name}/")
    assert [s["logStreamName"].startswith(f"{name}/algo-1-") for s in streams["logStreams"]] == [True]
    events = logs.get_log_events(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=streams["logStreams"][0]["logStreamName"]
    )["events"]
    assert any("trained on 300 points, train accuracy" in e["message"] for e in events)

    model_name = unique("centroid-model")
    container = {
        "Image": SCRIPT_IMAGE.replace("training", "inference"),
        "ModelDataUrl": artifact,
        "Environment": {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": experiment["source"]},
    }
    sagemaker.create_model(ModelName=model_name, ExecutionRoleArn=ROLE, PrimaryContainer=container)
    with pytest.raises(ClientError) as dup:
        sagemaker.create_model(ModelName=model_name, ExecutionRoleArn=ROLE, PrimaryContainer=container)
    assert dup.value.response["Error"]["Code"] == "ValidationException"
    assert "Cannot create already existing model" in dup.value.response["Error"]["Message"]
    assert sagemaker.describe_model(ModelName=model_name)["PrimaryContainer"]["ModelDataUrl"] == artifact

    test = experiment["test"]
    prefix = experiment["prefix"]
    for part, chunk in enumerate((test[:45], test[45:])):
        body = "".join(json.dumps({"id": r["id"], "x": r["x"]}) + "\n" for r in chunk)
        s3.put_object(Bucket=BUCKET, Key=f"{prefix}/batch/in/part-{part}.jsonl", Body=body)
    transform = unique("centroid-transform")
    sagemaker.create_transform_job(
        TransformJobName=transform,
        ModelName=model_name,
        BatchStrategy="SingleRecord",
        TransformInput={
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/{prefix}/batch/in/"}},
            "ContentType": "application/jsonlines",
            "SplitType": "Line",
        },
        TransformOutput={
            "S3OutputPath": f"s3://{BUCKET}/{prefix}/batch/out/",
            "Accept": "application/jsonlines",
            "AssembleWith": "Line",
        },
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
        DataProcessing={"InputFilter": "$", "JoinSource": "Input", "OutputFilter": "$['id','SageMakerOutput']"},
    )
    desc = wait_transform(sagemaker, transform)
    assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")
    outputs = []
    for part in range(2):
        body = s3.get_object(Bucket=BUCKET, Key=f"{prefix}/batch/out/part-{part}.jsonl.out")["Body"].read().decode()
        outputs += [json.loads(line) for line in body.splitlines()]
    assert [o["id"] for o in outputs] == [r["id"] for r in test]  # one line per record, in input order
    assert all(set(o) == {"id", "SageMakerOutput"} for o in outputs)
    accuracy = np.mean([o["SageMakerOutput"]["label"] == r["y"] for o, r in zip(outputs, test, strict=True)])
    print(f"nearest-centroid transform accuracy on 90 held-out points: {accuracy:.3f}")
    assert accuracy > 0.9

    assert model_name in [m["ModelName"] for m in sagemaker.list_models()["Models"]]
    sagemaker.delete_model(ModelName=model_name)
    with pytest.raises(ClientError) as gone:
        sagemaker.describe_model(ModelName=model_name)
    assert gone.value.response["Error"]["Code"] == "ValidationException"
    sagemaker.create_model(ModelName=model_name, ExecutionRoleArn=ROLE, PrimaryContainer=container)  # free again


def test_duplicate_training_job_name_is_refused_with_resource_in_use(sagemaker, experiment):
    name = unique("centroid-dup")
    request = script_job(name, experiment["source"], {"train": experiment["train"]}, experiment["output"], shrink=0.5)
    sagemaker.create_training_job(**request)
    with pytest.raises(ClientError) as err:
        sagemaker.create_training_job(**{**request, "TrainingJobName": name.upper()})
    assert err.value.response["Error"]["Code"] == "ResourceInUse"
    assert name in err.value.response["Error"]["Message"]
    assert wait_training(sagemaker, name)["TrainingJobStatus"] == "Completed"


def test_request_the_model_rejects_is_a_validation_exception_naming_the_field(
    sagemaker, boto_session, emulator, experiment
):
    # The service checks what botocore's client-side validation would refuse first, so switch that off to see it.
    unchecked = boto_session.client("sagemaker", endpoint_url=emulator.url, config=Config(parameter_validation=False))
    request = script_job("bad_name", experiment["source"], {"train": experiment["train"]}, experiment["output"])
    request["StoppingCondition"] = {"MaxRuntimeInSeconds": 0}
    with pytest.raises(ClientError) as err:
        unchecked.create_training_job(**request)
    message = err.value.response["Error"]["Message"]
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert "TrainingJobName" in message and "StoppingCondition.MaxRuntimeInSeconds" in message
    with pytest.raises(ClientError) as missing:
        sagemaker.describe_training_job(TrainingJobName=unique("never-created"))
    assert missing.value.response["Error"]["Code"] == "ValidationException"


def test_crashing_script_fails_the_job_with_its_reason(sagemaker, s3, experiment):
    source = _source_with(
        s3, experiment["prefix"], "import sys\nprint('about to fail')\nraise ValueError('centroids exploded')\n"
    )
    name = unique("crash")
    sagemaker.create_training_job(**script_job(name, source, {"train": experiment["train"]}, experiment["output"]))
    desc = wait_training(sagemaker, name)
    assert desc["TrainingJobStatus"] == "Failed"
    assert "ExitCode 1" in desc["FailureReason"] and "ValueError: centroids exploded" in desc["FailureReason"]
    assert desc["SecondaryStatusTransitions"][-1]["Status"] == "Failed"


def test_failure_file_becomes_the_failure_reason(sagemaker, s3, experiment):
    script = (
        "import os, sys\n"
        "open(os.path.join(os.environ['SM_OUTPUT_DIR'], 'failure'), 'w').write('not enough data: 0 rows')\n"
        "sys.exit(2)\n"
    )
    name = unique("failure-file")
    source = _source_with(s3, experiment["prefix"], script)
    sagemaker.create_training_job(**script_job(name, source, {"train": experiment["train"]}, experiment["output"]))
    desc = wait_training(sagemaker, name)
    assert desc["TrainingJobStatus"] == "Failed"
    assert desc["FailureReason"].startswith("AlgorithmError: not enough data: 0 rows")


def test_hanging_script_is_stopped_at_max_runtime(sagemaker, s3, experiment):
    source = _source_with(s3, experiment["prefix"], "import threading\nprint('hanging')\nthreading.Event().wait()\n")
    name = unique("hang")
    request = script_job(name, source, {"train": experiment["train"]}, experiment["output"], max_runtime=1)
    sagemaker.create_training_job(**request)
    desc = wait_training(sagemaker, name)
    assert (desc["TrainingJobStatus"], desc["SecondaryStatus"]) == ("Stopped", "MaxRuntimeExceeded")
    assert (desc["TrainingEndTime"] - desc["TrainingStartTime"]).total_seconds() >= 1


def test_stop_training_job_mid_run_stops_it_and_keeps_what_it_saved(sagemaker, s3, boto_session, emulator, experiment):
    script = (
        "import os, signal, sys, threading\n"
        "def saved(*_):\n"
        "    open(os.path.join(os.environ['SM_MODEL_DIR'], 'partial.json'), 'w').write('{\"epochs\": 1}')\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, saved)\n"
        "print('waiting for a stop', flush=True)\n"
        "threading.Event().wait()\n"
    )
    name = unique("stop-me")
    source = _source_with(s3, experiment["prefix"], script)
    sagemaker.create_training_job(**script_job(name, source, {"train": experiment["train"]}, experiment["output"]))
    wait_for_secondary_status(sagemaker, name, "Training")
    logs = boto_session.client("logs", endpoint_url=emulator.url)
    wait_for_log_line(logs, "/aws/sagemaker/TrainingJobs", f"{name}/", "waiting for a stop")
    sagemaker.stop_training_job(TrainingJobName=name)
    assert sagemaker.describe_training_job(TrainingJobName=name)["TrainingJobStatus"] in ("Stopping", "Stopped")
    desc = wait_training(sagemaker, name)
    assert (desc["TrainingJobStatus"], desc["SecondaryStatus"]) == ("Stopped", "Stopped")
    statuses = [t["Status"] for t in desc["SecondaryStatusTransitions"]]
    assert statuses[-2:] == ["Stopping", "Stopped"]
    key = desc["ModelArtifacts"]["S3ModelArtifacts"].split(f"s3://{BUCKET}/", 1)[1]
    assert read_tarball(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()) == {"partial.json": b'{"epochs": 1}'}


def test_injected_fault_fails_a_training_job_at_the_named_stage(sagemaker, emulator, experiment):
    import urllib.request

    def set_faults(rule: dict) -> None:
        request = urllib.request.Request(
            f"{emulator.url}/_emulator/faults", data=json.dumps(rule).encode(), method="POST"
        )
        urllib.request.urlopen(request).read()

    name = unique("faulty-train")
    set_faults({"fail_training_job_name_contains": "faulty-train", "fail_training_job_at": "downloading"})
    try:
        sagemaker.create_training_job(
            **script_job(name, experiment["source"], {"train": experiment["train"]}, experiment["output"])
        )
        desc = wait_training(sagemaker, name)
    finally:
        set_faults({})
    assert desc["TrainingJobStatus"] == "Failed"
    assert "injected failure during downloading" in desc["FailureReason"]
    assert desc["SecondaryStatusTransitions"][-2]["Status"] == "Downloading"


def test_aws_cli_lists_and_describes_training_jobs(emulator, sagemaker, experiment):
    name = unique("centroid-cli")
    sagemaker.create_training_job(
        **script_job(name, experiment["source"], {"train": experiment["train"]}, experiment["output"], shrink=0.1)
    )
    wait_training(sagemaker, name)
    aws = str(Path(sys.executable).with_name("aws"))
    listed = subprocess.run(
        [
            aws,
            "sagemaker",
            "list-training-jobs",
            "--name-contains",
            name,
            "--endpoint-url",
            emulator.url,
            "--output",
            "json",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    summaries = json.loads(listed.stdout)["TrainingJobSummaries"]
    assert [(s["TrainingJobName"], s["TrainingJobStatus"]) for s in summaries] == [(name, "Completed")]
