"""BlazingText training jobs and their batch transform, through the endpoint, on the synthetic news corpus.

The learning curve and the accuracies are measured here, from the jobs' FinalMetricDataList and the transform's
output; nothing is a constant."""

from __future__ import annotations

import itertools
import json

import pytest
from botocore.exceptions import ClientError

from emulator.sim.textcorpus import SEED_HYPERPARAMETERS, generate_headlines
from tests.emulator.training_helpers import (
    BLAZINGTEXT_IMAGE,
    ROLE,
    ensure_bucket,
    read_tarball,
    unique,
    wait_for_log_line,
    wait_training,
    wait_transform,
)

BUCKET = "blazingtext-tests"
SIZES = (500, 1000, 2000, 4000)
VALIDATION = 1000
HELD_OUT = 600


def _channel(name: str, uri: str) -> dict:
    return {
        "ChannelName": name,
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "AugmentedManifestFile",
                "S3Uri": uri,
                "S3DataDistributionType": "FullyReplicated",
                "AttributeNames": ["source", "category"],
            }
        },
        "ContentType": "application/x-recordio",
        "RecordWrapperType": "RecordIO",
        "InputMode": "Pipe",
    }


def _job(name: str, train: str, validation: str | None, output: str, **hps: str) -> dict:
    channels = [_channel("train", train)] + ([_channel("validation", validation)] if validation else [])
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": BLAZINGTEXT_IMAGE, "TrainingInputMode": "Pipe"},
        "RoleArn": ROLE,
        "HyperParameters": {**SEED_HYPERPARAMETERS, **hps},
        "InputDataConfig": channels,
        "OutputDataConfig": {"S3OutputPath": output},
        "ResourceConfig": {"InstanceType": "ml.c5.2xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 432000},
    }


@pytest.fixture(scope="module")
def corpus(s3):
    ensure_bucket(s3, BUCKET)
    prefix = unique("news")
    pairs = generate_headlines(max(SIZES) + VALIDATION + HELD_OUT, seed=3)
    classes = list(dict.fromkeys(c for _, c in pairs))  # label categories in first-seen order, as seed-text writes

    def manifest(key: str, rows: list[tuple[str, str]], start: int) -> str:
        body = "".join(
            json.dumps({"source": t, "id": start + i, "category": classes.index(c)}) + "\n"
            for i, (t, c) in enumerate(rows)
        )
        s3.put_object(Bucket=BUCKET, Key=f"{prefix}/{key}", Body=body)
        return f"s3://{BUCKET}/{prefix}/{key}"

    validation_rows = pairs[max(SIZES) : max(SIZES) + VALIDATION]
    held_out = pairs[max(SIZES) + VALIDATION :]
    return {
        "prefix": prefix,
        "classes": classes,
        "train": {n: manifest(f"train-{n}.manifest", pairs[:n], 0) for n in SIZES},
        "validation": manifest("validation.manifest", validation_rows, max(SIZES)),
        "held_out": held_out,
        "output": f"s3://{BUCKET}/{prefix}/training",
    }


@pytest.fixture(scope="module")
def trained(sagemaker, corpus):
    """One BlazingText job per training-set size, run together; their descriptions by size.

    The seed's hyperparameters, all 20 epochs: with its early stopping (patience 5 from epoch 1) a job on few labels
    can stop on the majority-class plateau of the first epochs (measured 2026-12-03: 500 labels keep epoch 1), which
    would measure the stopping rule, not what more labels teach."""
    names = {n: unique(f"bt-{n}") for n in SIZES}
    for n, name in names.items():
        request = _job(name, corpus["train"][n], corpus["validation"], corpus["output"], early_stopping="False")
        sagemaker.create_training_job(**request)
    return {n: wait_training(sagemaker, name) for n, name in names.items()}


def _metric(desc: dict, name: str) -> float:
    return next(m["Value"] for m in desc["FinalMetricDataList"] if m["MetricName"] == name)


def test_blazingtext_learning_curve_rises_with_more_labels(trained, boto_session, emulator):
    curve = {}
    for n, desc in trained.items():
        assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
        assert [t["Status"] for t in desc["SecondaryStatusTransitions"]][-2:] == ["Uploading", "Completed"]
        curve[n] = _metric(desc, "validation:accuracy")
        assert 0.0 < _metric(desc, "train:accuracy") <= 1.0
    print("BlazingText validation accuracy by training labels:", {n: round(a, 4) for n, a in curve.items()})
    for smaller, larger in itertools.pairwise(SIZES):
        assert curve[larger] > curve[smaller], curve
    assert curve[4000] > curve[500] + 0.05

    name = trained[2000]["TrainingJobName"]
    logs = boto_session.client("logs", endpoint_url=emulator.url)
    stream = logs.describe_log_streams(logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=f"{name}/")
    events = logs.get_log_events(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=stream["logStreams"][0]["logStreamName"]
    )["events"]
    epochs = [e["message"] for e in events if e["message"].startswith("Epoch ")]
    assert epochs and all("train accuracy" in m and "validation accuracy" in m for m in epochs)
    assert f"#validation_accuracy: {curve[2000]:.4f}" in [e["message"] for e in events]


def test_blazingtext_artifact_is_a_safe_npz_not_a_pickle(trained, s3):
    artifact = trained[500]["ModelArtifacts"]["S3ModelArtifacts"]
    bucket, key = artifact[len("s3://") :].split("/", 1)
    files = read_tarball(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert list(files) == ["model.npz"]
    assert files["model.npz"][:2] == b"PK"  # a zip of .npy arrays, loaded with allow_pickle=False


def test_multirecord_transform_writes_the_seeds_out_format(trained, sagemaker, s3, corpus):
    best = trained[4000]
    model_name = best["TrainingJobName"]  # the seed names the model after its training job
    sagemaker.create_model(
        ModelName=model_name,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": BLAZINGTEXT_IMAGE, "ModelDataUrl": best["ModelArtifacts"]["S3ModelArtifacts"]},
    )
    held_out = corpus["held_out"]
    ks = [len(corpus["classes"]) if i % 3 else 1 for i in range(len(held_out))]  # `k` per record, honoured
    lines = [
        json.dumps({"source": t, "k": k, "id": 10_000 + i})
        for i, ((t, _), k) in enumerate(zip(held_out, ks, strict=False))
    ]
    prefix = corpus["prefix"]
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/inference/input/unlabeled.manifest", Body="\n".join(lines) + "\n")
    transform = unique("bt-transform")
    request = {
        "TransformJobName": transform,
        "ModelName": model_name,
        "BatchStrategy": "MultiRecord",
        "MaxPayloadInMB": 1,  # several batches for 600 records
        "TransformInput": {
            "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/{prefix}/inference/input/"}
            },
            "ContentType": "application/jsonlines",
            "SplitType": "Line",
        },
        "TransformOutput": {
            "S3OutputPath": f"s3://{BUCKET}/{prefix}/inference/output",
            "Accept": "application/jsonlines",
            "AssembleWith": "Line",
        },
        "TransformResources": {"InstanceType": "ml.m4.xlarge", "InstanceCount": 1},
        "DataProcessing": {"InputFilter": "$", "JoinSource": "Input", "OutputFilter": "$['id','SageMakerOutput']"},
    }
    sagemaker.create_transform_job(**request)
    with pytest.raises(ClientError) as dup:
        sagemaker.create_transform_job(**request)
    assert dup.value.response["Error"]["Code"] == "ResourceInUse"
    desc = wait_transform(sagemaker, transform)
    assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")

    body = s3.get_object(Bucket=BUCKET, Key=f"{prefix}/inference/output/unlabeled.manifest.out")["Body"].read()
    outputs = [json.loads(line) for line in body.decode().splitlines()]
    assert [o["id"] for o in outputs] == [10_000 + i for i in range(len(held_out))]
    correct = 0
    for output, k, (_, truth) in zip(outputs, ks, held_out, strict=True):
        assert set(output) == {"id", "SageMakerOutput"}
        labels, probs = output["SageMakerOutput"]["label"], output["SageMakerOutput"]["prob"]
        assert len(labels) == len(probs) == k
        assert all(label.startswith("__label__") for label in labels)
        assert probs == sorted(probs, reverse=True) and 0.0 < sum(probs) <= 1.0 + 1e-9
        correct += labels[0] == f"__label__{corpus['classes'].index(truth)}"
    accuracy = correct / len(held_out)
    print(f"transform top-1 accuracy on {len(held_out)} held-out headlines: {accuracy:.4f}")
    assert abs(accuracy - _metric(best, "validation:accuracy")) < 0.08


def test_file_mode_channel_and_a_record_without_source_fails_the_transform(sagemaker, s3, corpus):
    prefix = corpus["prefix"]
    pairs = generate_headlines(800, seed=11)
    body = "".join(f"__label__{c} {t}\n" for t, c in pairs)
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/filemode/train/train.txt", Body=body)
    name = unique("bt-file")
    request = _job(name, "", None, corpus["output"], early_stopping="False", epochs="5")
    request["InputDataConfig"] = [
        {
            "ChannelName": "train",
            "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/{prefix}/filemode/train/"}
            },
        }
    ]
    request["AlgorithmSpecification"]["TrainingInputMode"] = "File"
    sagemaker.create_training_job(**request)
    desc = wait_training(sagemaker, name)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    assert [m["MetricName"] for m in desc["FinalMetricDataList"]] == ["train:accuracy"]

    sagemaker.create_model(
        ModelName=name,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": BLAZINGTEXT_IMAGE, "ModelDataUrl": desc["ModelArtifacts"]["S3ModelArtifacts"]},
    )
    lines = [json.dumps({"source": "stocks fall on rate fears"}), json.dumps({"text": "no source here"})]
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/filemode/batch/in.jsonl", Body="\n".join(lines) + "\n")
    transform = unique("bt-bad-record")
    sagemaker.create_transform_job(
        TransformJobName=transform,
        ModelName=name,
        BatchStrategy="SingleRecord",
        TransformInput={
            "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/{prefix}/filemode/batch/"}
            },
            "ContentType": "application/jsonlines",
            "SplitType": "Line",
        },
        TransformOutput={"S3OutputPath": f"s3://{BUCKET}/{prefix}/filemode/out", "AssembleWith": "Line"},
        TransformResources={"InstanceType": "ml.m4.xlarge", "InstanceCount": 1},
    )
    desc = wait_transform(sagemaker, transform)
    assert desc["TransformJobStatus"] == "Failed"
    assert 'no "source"' in desc["FailureReason"] and "in.jsonl record 2" in desc["FailureReason"]
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/filemode/out")
    assert listed.get("KeyCount", 0) == 0  # no .out for an object that failed


def test_stop_training_job_mid_run_stops_blazingtext_between_epochs(sagemaker, boto_session, emulator, corpus):
    name = unique("bt-stop")
    request = _job(name, corpus["train"][4000], corpus["validation"], corpus["output"], early_stopping="False")
    request["HyperParameters"]["epochs"] = "500"  # far longer than the test waits
    sagemaker.create_training_job(**request)
    logs = boto_session.client("logs", endpoint_url=emulator.url)
    wait_for_log_line(logs, "/aws/sagemaker/TrainingJobs", f"{name}/", "Epoch 2:")
    sagemaker.stop_training_job(TrainingJobName=name)
    desc = wait_training(sagemaker, name)
    assert (desc["TrainingJobStatus"], desc["SecondaryStatus"]) == ("Stopped", "Stopped")
    events = logs.filter_log_events(logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=f"{name}/")
    epochs = [e for e in events["events"] if e["message"].startswith("Epoch ")]
    assert 2 <= len(epochs) < 500
