"""Peak memory and wall time of a BlazingText train + batch transform of N records through the emulator's endpoint.

One process holds the emulator (moto included) and the boto3 client, as the tests do. The corpus is the synthetic
news generator's; training uses the seed's hyperparameters (20 epochs, early stopping on a validation channel of
N / 10 records) on N labeled records as an augmented manifest; the transform scores N records as `MultiRecord`
JSON Lines with the seed's `DataProcessing`. Prints wall times, the validation accuracy the job measured, and the
process's peak RSS before and after. Usage: python bench/blazingtext_memory.py [records]
"""

from __future__ import annotations

import json
import logging
import resource
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "plugins"), str(REPO)]

import boto3  # noqa: E402

from emulator.app import build_app  # noqa: E402
from emulator.server import EmulatorServer  # noqa: E402
from emulator.sim.textcorpus import SEED_HYPERPARAMETERS, generate_headlines  # noqa: E402

REGION = "us-east-1"
IMAGE = "811284229777.dkr.ecr.us-east-1.amazonaws.com/blazingtext:1"
ROLE = "arn:aws:iam::123456789012:role/SageMakerExecution"
BUCKET = "bench-blazingtext"


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def channel(name: str, uri: str) -> dict:
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
        "RecordWrapperType": "RecordIO",
        "InputMode": "Pipe",
    }


def main() -> None:
    records = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = EmulatorServer("127.0.0.1", 0, build_app(time_scale=1e6)).start()
    session = boto3.session.Session(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - the emulator accepts any credentials
        region_name=REGION,
    )
    s3 = session.client("s3", endpoint_url=server.url)
    sagemaker = session.client("sagemaker", endpoint_url=server.url)
    s3.create_bucket(Bucket=BUCKET)

    validation_size = records // 10
    pairs = generate_headlines(records * 2 + validation_size, seed=0)
    classes = list(dict.fromkeys(c for _, c in pairs))

    def manifest(key: str, rows: list[tuple[str, str]]) -> str:
        body = "".join(json.dumps({"source": t, "category": classes.index(c)}) + "\n" for t, c in rows)
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        return f"s3://{BUCKET}/{key}"

    train = manifest("train.manifest", pairs[:records])
    validation = manifest("validation.manifest", pairs[records : records + validation_size])
    unlabeled = pairs[records + validation_size :]
    lines = "".join(json.dumps({"source": t, "k": len(classes), "id": i}) + "\n" for i, (t, _) in enumerate(unlabeled))
    s3.put_object(Bucket=BUCKET, Key="inference/input/unlabeled.manifest", Body=lines)
    before = peak_mb()
    print(f"emulator up, {records:,} + {validation_size:,} labeled and {len(unlabeled):,} unlabeled records in S3")
    print(f"peak RSS so far: {before:.0f} MB")

    waiter = {"Delay": 0.2, "MaxAttempts": 3000}
    t0 = time.perf_counter()
    sagemaker.create_training_job(
        TrainingJobName="bench-blazingtext",
        AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "Pipe"},
        RoleArn=ROLE,
        HyperParameters=SEED_HYPERPARAMETERS,
        InputDataConfig=[channel("train", train), channel("validation", validation)],
        OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/training"},
        ResourceConfig={"InstanceType": "ml.c5.2xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        StoppingCondition={"MaxRuntimeInSeconds": 432000},
    )
    sagemaker.get_waiter("training_job_completed_or_stopped").wait(
        TrainingJobName="bench-blazingtext", WaiterConfig=waiter
    )
    train_seconds = time.perf_counter() - t0
    desc = sagemaker.describe_training_job(TrainingJobName="bench-blazingtext")
    metrics = {m["MetricName"]: round(m["Value"], 4) for m in desc["FinalMetricDataList"]}
    after_train = peak_mb()

    sagemaker.create_model(
        ModelName="bench-blazingtext",
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": desc["ModelArtifacts"]["S3ModelArtifacts"]},
    )
    t0 = time.perf_counter()
    sagemaker.create_transform_job(
        TransformJobName="bench-blazingtext",
        ModelName="bench-blazingtext",
        BatchStrategy="MultiRecord",
        TransformInput={
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/inference/input/"}},
            "ContentType": "application/jsonlines",
            "SplitType": "Line",
        },
        TransformOutput={
            "S3OutputPath": f"s3://{BUCKET}/inference/output",
            "Accept": "application/jsonlines",
            "AssembleWith": "Line",
        },
        TransformResources={"InstanceType": "ml.m4.xlarge", "InstanceCount": 1},
        DataProcessing={"InputFilter": "$", "JoinSource": "Input", "OutputFilter": "$['id','SageMakerOutput']"},
    )
    sagemaker.get_waiter("transform_job_completed_or_stopped").wait(
        TransformJobName="bench-blazingtext", WaiterConfig=waiter
    )
    transform_seconds = time.perf_counter() - t0
    out = s3.get_object(Bucket=BUCKET, Key="inference/output/unlabeled.manifest.out")["Body"].read().decode()
    outputs = [json.loads(line) for line in out.splitlines()]
    correct = sum(
        o["SageMakerOutput"]["label"][0] == f"__label__{classes.index(c)}"
        for o, (_, c) in zip(outputs, unlabeled, strict=True)
    )
    margins = [p[0] - p[1] for p in (o["SageMakerOutput"]["prob"] for o in outputs)]
    server.stop()

    print(f"training: {desc['TrainingJobStatus']} in {train_seconds:.1f} s wall, {metrics}")
    auto = sum(m > 0.5 for m in margins) / len(margins)
    print(
        f"transform: {len(outputs):,} records in {transform_seconds:.1f} s wall, top-1 accuracy "
        f"{correct / len(outputs):.4f}, top-1 minus top-2 > 0.5 on {auto:.1%}"
    )
    print(f"peak RSS: {before:.0f} MB before training, {after_train:.0f} MB after, {peak_mb():.0f} MB after transform")


if __name__ == "__main__":
    main()
