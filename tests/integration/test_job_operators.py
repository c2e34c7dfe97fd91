"""Training, model and transform operators in real DAG runs against the emulator: the labeling operator's
retry-safety promises, for every paid job of the bring-your-own-model loop."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from emulator.faults import FaultConfig
from tests.emulator.training_helpers import (
    INFERENCE_PY,
    ROLE,
    SCRIPT_IMAGE,
    TRAIN_PY,
    centroid_points,
    ensure_bucket,
    script_job,
    tarball,
    unique,
)

BUCKET = "byom-operator-tests"
DAG_ID = "byom_jobs"

DAG_FILE = '''
"""Train a model, register it, batch-transform with it: our three retry-safe operators."""
import json
import os
from datetime import datetime

from airflow.sdk import DAG
from groundtruth.operators import CreateModelOperator, CreateTrainingJobOperator, CreateTransformJobOperator

# Other tests parse the same folder without this DAG's spec: then the file defines nothing.
SPEC = json.loads(os.environ.get("GT_TEST_BYOM") or "null")
COMMON = {"deferrable": SPEC and SPEC["deferrable"], "check_interval": 0.2,
          "restart_failed_job": bool(SPEC and SPEC.get("restart_failed_job"))}

if SPEC:
  with DAG("byom_jobs", schedule=None, start_date=datetime(2026, 1, 1), catchup=False,
           default_args={"owner": "ml", "retries": 0}, doc_md="test", tags=["test"]) as dag:
      train = CreateTrainingJobOperator(task_id="train", config=SPEC["training"], **COMMON)
      model = CreateModelOperator(task_id="model", config={
          "ModelName": SPEC["model_name"],
          "ExecutionRoleArn": SPEC["role"],
          "PrimaryContainer": {
              "Image": SPEC["inference_image"],
              "ModelDataUrl": "{{ ti.xcom_pull(task_ids='train')['model_data_url'] }}",
              "Environment": {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": SPEC["source"]},
          },
      })
      transform = CreateTransformJobOperator(task_id="transform", config=SPEC["transform"], **COMMON)
      train >> model >> transform
'''


@pytest.fixture(scope="module")
def byom_folder(dag_folder):
    (dag_folder / "byom_jobs.py").write_text(DAG_FILE)
    return dag_folder


@pytest.fixture
def spec(s3):
    """One small experiment's requests: 300 training points in two classes-of-three, 90 to transform."""
    ensure_bucket(s3, BUCKET)
    prefix = unique("byom")
    train = centroid_points(np.random.default_rng(7), 300)
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/train/part-0.jsonl", Body="".join(json.dumps(r) + "\n" for r in train))
    s3.put_object(
        Bucket=BUCKET,
        Key=f"{prefix}/code/sourcedir.tar.gz",
        Body=tarball({"train.py": TRAIN_PY, "inference.py": INFERENCE_PY}),
    )
    test = centroid_points(np.random.default_rng(8), 90)
    body = "".join(json.dumps({"id": r["id"], "x": r["x"]}) + "\n" for r in test)
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/batch/in/part-0.jsonl", Body=body)
    source = f"s3://{BUCKET}/{prefix}/code/sourcedir.tar.gz"
    name = unique("byom-train")
    return {
        "prefix": prefix,
        "test": test,
        "source": source,
        "role": ROLE,
        "inference_image": SCRIPT_IMAGE.replace("training", "inference"),
        "model_name": name,  # the seed names the model after its training job
        "training": script_job(
            name, source, {"train": f"s3://{BUCKET}/{prefix}/train/"}, f"s3://{BUCKET}/{prefix}/out", shrink=0.0
        ),
        "transform": {
            "TransformJobName": unique("byom-transform"),
            "ModelName": name,
            "BatchStrategy": "SingleRecord",
            "TransformInput": {
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/{prefix}/batch/in/"}
                },
                "ContentType": "application/jsonlines",
                "SplitType": "Line",
            },
            "TransformOutput": {
                "S3OutputPath": f"s3://{BUCKET}/{prefix}/batch/out/",
                "Accept": "application/jsonlines",
                "AssembleWith": "Line",
            },
            "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": "1"},  # as Jinja renders it
            "DataProcessing": {"InputFilter": "$", "JoinSource": "Input", "OutputFilter": "$['id','SageMakerOutput']"},
        },
    }


def load(folder: Path, monkeypatch, spec: dict, **overrides):
    from tests.integration.conftest import load_dag

    monkeypatch.setenv("GT_TEST_BYOM", json.dumps({**spec, **overrides}))
    return load_dag(folder, DAG_ID)


def states(dagrun) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in dagrun.get_task_instances()}


def names(sagemaker, kind: str, prefix: str) -> list[str]:
    listing = {
        "training": ("list_training_jobs", "TrainingJobSummaries", "TrainingJobName"),
        "transform": ("list_transform_jobs", "TransformJobSummaries", "TransformJobName"),
    }[kind]
    found = getattr(sagemaker, listing[0])(NameContains=prefix, MaxResults=100)[listing[1]]
    return sorted(j[listing[2]] for j in found)


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferrable", "synchronous"])
def test_train_model_transform_then_a_rerun_reattaches_to_every_job(
    byom_folder, monkeypatch, spec, sagemaker, s3, deferrable
):
    when = datetime(2026, 11, 5, tzinfo=UTC)
    dag = load(byom_folder, monkeypatch, spec, deferrable=deferrable)
    first = dag.test(logical_date=when, run_after=when)
    assert set(states(first).values()) == {"success"}, states(first)
    trained = first.get_task_instance("train").xcom_pull(task_ids="train")
    assert trained["status"] == "Completed" and trained["model_data_url"].endswith("/output/model.tar.gz")
    model = first.get_task_instance("model").xcom_pull(task_ids="model")
    assert model["created"] is True and model["ModelName"] == spec["model_name"]
    out_key = f"{spec['prefix']}/batch/out/part-0.jsonl.out"
    output = s3.get_object(Bucket=BUCKET, Key=out_key)["Body"].read()
    lines = [json.loads(line) for line in output.decode().splitlines()]
    assert [line["id"] for line in lines] == [r["id"] for r in spec["test"]]

    # The same run again, as a clear of every task does: no second job of any kind, the same output bytes.
    again = dag.test(logical_date=when, run_after=when)
    assert again.run_id == first.run_id and set(states(again).values()) == {"success"}, states(again)
    assert names(sagemaker, "training", spec["model_name"]) == [spec["model_name"]]
    assert names(sagemaker, "transform", spec["transform"]["TransformJobName"]) == [
        spec["transform"]["TransformJobName"]
    ]
    assert again.get_task_instance("model").xcom_pull(task_ids="model")["created"] is False
    assert s3.get_object(Bucket=BUCKET, Key=out_key)["Body"].read() == output


def test_a_failed_training_job_fails_its_task_and_only_restart_failed_job_starts_another(
    byom_folder, monkeypatch, spec, sagemaker, emulator
):
    when = datetime(2026, 11, 6, tzinfo=UTC)
    name = spec["model_name"]
    emulator.app.faults.configure(FaultConfig(fail_training_job_name_contains=name, fail_training_job_at="training"))
    try:
        run = load(byom_folder, monkeypatch, spec, deferrable=True).test(logical_date=when, run_after=when)
        assert states(run)["train"] == "failed"
        job = sagemaker.describe_training_job(TrainingJobName=name)
        assert job["TrainingJobStatus"] == "Failed" and job["FailureReason"]
        again = load(byom_folder, monkeypatch, spec, deferrable=True).test(logical_date=when, run_after=when)
        assert states(again)["train"] == "failed"
        assert names(sagemaker, "training", name) == [name]  # the retry reported the same job, paid for nothing new

        load(byom_folder, monkeypatch, spec, deferrable=True, restart_failed_job=True).test(
            logical_date=when, run_after=when
        )
        assert names(sagemaker, "training", name) == [name, f"{name}-a1"]
    finally:
        emulator.app.faults.configure(FaultConfig())
