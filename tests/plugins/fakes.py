"""Builders and fakes shared by the groundtruth plugin tests: valid service responses, a fake task instance and
clock, and a fake aiobotocore client. Nothing here touches the network."""

from __future__ import annotations

import datetime
from typing import Any

from botocore.exceptions import ClientError

from groundtruth.requests import build_create_labeling_job_request, labeling_job_name

REGION = "us-east-1"
ACCOUNT = "123456789012"
DAG_ID = "labeling_experiment_birds"
RUN_ID = "manual__2024-05-17T01:23:45+00:00"
TASK_ID = "label_iteration_1"
JOB_NAME = labeling_job_name(DAG_ID, RUN_ID, TASK_ID, 1)
WORKTEAM_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:workteam/private-crowd/birders"
T0 = datetime.datetime(2024, 5, 17, 1, 23, 45, tzinfo=datetime.UTC)


def job_config(**overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "job_name": JOB_NAME,
        "region": REGION,
        "task_type": "bounding_box",
        "label_attribute_name": "category",
        "input_manifest_s3_uri": "s3://bucket/run/iteration-1/input.manifest",
        "output_s3_uri": "s3://bucket/run/iteration-1/output/",
        "role_arn": f"arn:aws:iam::{ACCOUNT}:role/GroundTruth",
        "task_title": "Draw a box around each bird",
        "task_description": "Please draw a box around each bird. Thank you!",
        "workforce": {"kind": "private", "workteam_arn": WORKTEAM_ARN},
        "ui_template_s3_uri": "s3://bucket/run/template.liquid",
        "label_category_config_s3_uri": "s3://bucket/run/labels.json",
    }
    config.update(overrides)
    return config


def job_request(**overrides: Any) -> dict[str, Any]:
    return build_create_labeling_job_request(job_config(**overrides))


def job_arn(name: str) -> str:
    return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:labeling-job/{name.lower()}"


def describe_response(
    name: str = JOB_NAME,
    status: str = "InProgress",
    *,
    tags: dict[str, str] | None = None,
    human: int = 0,
    machine: int = 0,
    failed: int = 0,
    unlabeled: int = 100,
    failure_reason: str | None = None,
    output_manifest: str | None = None,
    final_model_arn: str | None = None,
) -> dict[str, Any]:
    """A DescribeLabelingJob response that passes botocore's output validation."""
    response: dict[str, Any] = {
        "LabelingJobStatus": status,
        "LabelCounters": {
            "TotalLabeled": human + machine,
            "HumanLabeled": human,
            "MachineLabeled": machine,
            "FailedNonRetryableError": failed,
            "Unlabeled": unlabeled,
        },
        "CreationTime": T0,
        "LastModifiedTime": T0 + datetime.timedelta(hours=1),
        "JobReferenceCode": "ref",
        "LabelingJobName": name,
        "LabelingJobArn": job_arn(name),
        "LabelAttributeName": "category",
        "InputConfig": {
            "DataSource": {"S3DataSource": {"ManifestS3Uri": "s3://bucket/run/iteration-1/input.manifest"}}
        },
        "OutputConfig": {"S3OutputPath": "s3://bucket/run/iteration-1/output/"},
        "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/GroundTruth",
        "HumanTaskConfig": {
            "WorkteamArn": WORKTEAM_ARN,
            "UiConfig": {"UiTemplateS3Uri": "s3://bucket/run/template.liquid"},
            "TaskTitle": "t",
            "TaskDescription": "d",
            "NumberOfHumanWorkersPerDataObject": 1,
            "TaskTimeLimitInSeconds": 300,
        },
    }
    if tags is not None:
        response["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
    if failure_reason:
        response["FailureReason"] = failure_reason
    if output_manifest or final_model_arn:
        response["LabelingJobOutput"] = {"OutputDatasetS3Uri": output_manifest or "s3://bucket/out/output.manifest"}
        if final_model_arn:
            response["LabelingJobOutput"]["FinalActiveLearningModelArn"] = final_model_arn
    return response


def client_error(
    code: str, message: str = "", status: int = 400, operation: str = "DescribeLabelingJob"
) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, operation
    )


class FakeTI:
    """What the operators read from ``context["ti"]``, plus a record of XCom pushes."""

    def __init__(self, dag_id=DAG_ID, run_id=RUN_ID, task_id=TASK_ID, map_index=-1, try_number=1):
        self.dag_id, self.run_id, self.task_id = dag_id, run_id, task_id
        self.map_index, self.try_number = map_index, try_number
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


def context(**ti_kwargs: Any) -> dict[str, Any]:
    return {"ti": FakeTI(**ti_kwargs)}


class FakeClock:
    """A monotonic clock that only moves when the code under test sleeps."""

    def __init__(self, start: float = 1_000.0):
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)


class FakeAsyncClient:
    """Stands in for an aiobotocore SageMaker client: replays describe results (responses or exceptions)."""

    def __init__(self, describe_results: list[Any]):
        self.describe_results = list(describe_results)
        self.calls: list[tuple[str, str]] = []

    async def __aenter__(self) -> FakeAsyncClient:
        return self

    async def __aexit__(self, *exc: Any) -> bool:
        return False

    async def describe_labeling_job(self, LabelingJobName: str) -> dict[str, Any]:
        self.calls.append(("describe", LabelingJobName))
        result = self.describe_results.pop(0)
        if isinstance(result, Exception):
            raise result
        return result

    async def stop_labeling_job(self, LabelingJobName: str) -> dict[str, Any]:
        self.calls.append(("stop", LabelingJobName))
        return {}
