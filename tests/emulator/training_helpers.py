"""Building blocks for training / model / transform tests against the emulator: requests, source tarballs, waits."""

from __future__ import annotations

import io
import json
import tarfile
import uuid

import numpy as np
from botocore.exceptions import WaiterError
from botocore.waiter import WaiterModel, create_waiter_with_client

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/SageMakerExecution"
SCRIPT_IMAGE = f"763104351884.dkr.ecr.{REGION}.amazonaws.com/pytorch-training:2.1-cpu-py310"
BLAZINGTEXT_IMAGE = f"811284229777.dkr.ecr.{REGION}.amazonaws.com/blazingtext:1"
FAST = {"Delay": 0.1, "MaxAttempts": 1200}  # botocore's own waiters, polling every 0.1 s


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def tarball(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def read_tarball(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def ensure_bucket(s3, bucket: str) -> None:
    if bucket not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=bucket)


def script_job(
    name: str, source_uri: str, channels: dict[str, str], output: str, max_runtime: int = 3600, **hps: str
) -> dict:
    """A CreateTrainingJob request for a script-mode job, hyperparameters JSON-quoted as the SageMaker SDK does."""
    hyperparameters = {k: json.dumps(v) for k, v in hps.items()}
    hyperparameters["sagemaker_program"] = json.dumps("train.py")
    hyperparameters["sagemaker_submit_directory"] = json.dumps(source_uri)
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": SCRIPT_IMAGE, "TrainingInputMode": "File"},
        "RoleArn": ROLE,
        "HyperParameters": hyperparameters,
        "InputDataConfig": [
            {
                "ChannelName": channel,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": uri,
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
            for channel, uri in channels.items()
        ],
        "OutputDataConfig": {"S3OutputPath": output},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime},
    }


def wait_training(sagemaker, name: str) -> dict:
    """botocore's own waiter; it raises on Failed, which some tests expect, so the description is returned either
    way."""
    try:
        sagemaker.get_waiter("training_job_completed_or_stopped").wait(TrainingJobName=name, WaiterConfig=FAST)
    except WaiterError as exc:
        if "Failed" not in str(exc):
            raise
    return sagemaker.describe_training_job(TrainingJobName=name)


def wait_transform(sagemaker, name: str) -> dict:
    try:
        sagemaker.get_waiter("transform_job_completed_or_stopped").wait(TransformJobName=name, WaiterConfig=FAST)
    except WaiterError as exc:
        if "Failed" not in str(exc):
            raise
    return sagemaker.describe_transform_job(TransformJobName=name)


def wait_for_log_line(logs, group: str, stream_prefix: str, text: str) -> None:
    """A waiter (data, like botocore's own) on CloudWatch Logs: until a line containing `text` is in the stream."""
    model = WaiterModel(
        {
            "version": 2,
            "waiters": {
                "LogLine": {
                    "operation": "FilterLogEvents",
                    "delay": 0.1,
                    "maxAttempts": 600,
                    "acceptors": [
                        {"state": "success", "matcher": "path", "argument": "length(events) > `0`", "expected": True},
                        {"state": "retry", "matcher": "error", "expected": "ResourceNotFoundException"},
                    ],
                }
            },
        }
    )
    create_waiter_with_client("LogLine", model, logs).wait(
        logGroupName=group, logStreamNamePrefix=stream_prefix, filterPattern=f'"{text}"'
    )


def wait_for_secondary_status(sagemaker, name: str, status: str) -> None:
    model = WaiterModel(
        {
            "version": 2,
            "waiters": {
                "Secondary": {
                    "operation": "DescribeTrainingJob",
                    "delay": 0.1,
                    "maxAttempts": 600,
                    "acceptors": [
                        {"state": "success", "matcher": "path", "argument": "SecondaryStatus", "expected": status},
                        {"state": "failure", "matcher": "path", "argument": "TrainingJobStatus", "expected": "Failed"},
                    ],
                }
            },
        }
    )
    create_waiter_with_client("Secondary", model, sagemaker).wait(TrainingJobName=name)


# A small script-mode model: a nearest-centroid classifier in numpy, saved as JSON, served through model_fn /
# input_fn / predict_fn / output_fn.
TRAIN_PY = """
import argparse, glob, json, os
import numpy as np

parser = argparse.ArgumentParser()
parser.add_argument("--shrink", type=float, default=0.0)
parser.add_argument("--model-dir", default=os.environ["SM_MODEL_DIR"])
parser.add_argument("--train", default=os.environ["SM_CHANNEL_TRAIN"])
args = parser.parse_args()

hps = json.loads(os.environ["SM_HPS"])
assert hps == {"shrink": args.shrink}, hps
assert json.loads(os.environ["SM_CHANNELS"]) == ["train"]
config = json.load(open(os.path.join(os.environ["SM_INPUT_CONFIG_DIR"], "hyperparameters.json")))
assert "sagemaker_program" in config and os.environ["SM_HP_SHRINK"] == str(args.shrink)

points, labels = [], []
for path in sorted(glob.glob(os.path.join(args.train, "**", "*.jsonl"), recursive=True)):
    for line in open(path):
        record = json.loads(line)
        points.append(record["x"]); labels.append(record["y"])
points = np.asarray(points)
classes = sorted(set(labels))
centroids = {c: ((1 - args.shrink) * points[[l == c for l in labels]].mean(axis=0)).tolist() for c in classes}
predicted = [min(classes, key=lambda c: np.linalg.norm(p - np.asarray(centroids[c]))) for p in points]
accuracy = float(np.mean([p == l for p, l in zip(predicted, labels)]))
print(f"trained on {len(points)} points, train accuracy {accuracy:.4f}")
json.dump({"centroids": centroids}, open(os.path.join(args.model_dir, "model.json"), "w"))
open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "accuracy.txt"), "w").write(str(accuracy))
"""

INFERENCE_PY = """
import json, os
import numpy as np

def model_fn(model_dir):
    centroids = json.load(open(os.path.join(model_dir, "model.json")))["centroids"]
    return {c: np.asarray(v) for c, v in centroids.items()}

def input_fn(body, content_type):
    assert content_type == "application/jsonlines", content_type
    return [json.loads(line) for line in body.splitlines() if line.strip()]

def predict_fn(records, model):
    answers = []
    for record in records:
        distances = {c: float(np.linalg.norm(np.asarray(record["x"]) - v)) for c, v in model.items()}
        answers.append({"label": min(distances, key=distances.get), "distances": distances})
    return answers

def output_fn(answers, accept):
    return "".join(json.dumps(a) + "\\n" for a in answers)
"""


def centroid_points(rng: np.random.Generator, n: int) -> list[dict]:
    centers = {"a": (0.0, 0.0), "b": (4.0, 4.0), "c": (-4.0, 4.0)}
    records = []
    for i in range(n):
        label = "abc"[i % 3]
        records.append(
            {"id": i, "x": (np.asarray(centers[label]) + rng.normal(0, 1.0, 2)).round(4).tolist(), "y": label}
        )
    return records
