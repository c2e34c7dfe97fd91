"""JSON 1.1 wire format for training jobs, CreateModel and batch-transform jobs: validate, call the backend, shape
the answer. Timestamps go out as epoch seconds. DescribeModel, ListModels and DeleteModel stay moto's (the models
live in its backend); CreateModel is ours only to refuse a duplicate name."""

from __future__ import annotations

from collections.abc import Callable

from emulator.training.models import ModelBackend, TrainingBackend, TransformBackend
from emulator.training.validation import validate

AddJsonHandler = Callable[[str, Callable[[str, dict], dict]], None]


class TrainingResponses:
    def __init__(self, training: TrainingBackend, models: ModelBackend, transforms: TransformBackend) -> None:
        self.training = training
        self.models = models
        self.transforms = transforms

    # -- training jobs -------------------------------------------------------------------------------------------
    def create_training_job(self, region: str, body: dict) -> dict:
        validate("CreateTrainingJob", body)
        return {"TrainingJobArn": self.training.create(region, body).arn}

    def describe_training_job(self, region: str, body: dict) -> dict:
        validate("DescribeTrainingJob", body)
        return self.training.get(region, body["TrainingJobName"]).describe()

    def stop_training_job(self, region: str, body: dict) -> dict:
        validate("StopTrainingJob", body)
        self.training.stop(region, body["TrainingJobName"])
        return {}

    def list_training_jobs(self, region: str, body: dict) -> dict:
        validate("ListTrainingJobs", body)
        jobs, token = self.training.list(region, body)
        result: dict = {"TrainingJobSummaries": [job.summary() for job in jobs]}
        if token:
            result["NextToken"] = token
        return result

    # -- models --------------------------------------------------------------------------------------------------
    def create_model(self, region: str, body: dict) -> dict:
        validate("CreateModel", body)
        return {"ModelArn": self.models.create(region, body)}

    # -- transform jobs ------------------------------------------------------------------------------------------
    def create_transform_job(self, region: str, body: dict) -> dict:
        validate("CreateTransformJob", body)
        return {"TransformJobArn": self.transforms.create(region, body).arn}

    def describe_transform_job(self, region: str, body: dict) -> dict:
        validate("DescribeTransformJob", body)
        return self.transforms.get(region, body["TransformJobName"]).describe()

    def stop_transform_job(self, region: str, body: dict) -> dict:
        validate("StopTransformJob", body)
        self.transforms.stop(region, body["TransformJobName"])
        return {}

    def list_transform_jobs(self, region: str, body: dict) -> dict:
        validate("ListTransformJobs", body)
        jobs, token = self.transforms.list(region, body)
        result: dict = {"TransformJobSummaries": [job.summary() for job in jobs]}
        if token:
            result["NextToken"] = token
        return result


def register(
    add_json_handler: AddJsonHandler, training: TrainingBackend, models: ModelBackend, transforms: TransformBackend
) -> None:
    """Route the training-job, CreateModel and transform-job operations to their backends."""
    responses = TrainingResponses(training, models, transforms)
    for op, handler in {
        "CreateTrainingJob": responses.create_training_job,
        "DescribeTrainingJob": responses.describe_training_job,
        "StopTrainingJob": responses.stop_training_job,
        "ListTrainingJobs": responses.list_training_jobs,
        "CreateModel": responses.create_model,
        "CreateTransformJob": responses.create_transform_job,
        "DescribeTransformJob": responses.describe_transform_job,
        "StopTransformJob": responses.stop_transform_job,
        "ListTransformJobs": responses.list_transform_jobs,
    }.items():
        add_json_handler(f"SageMaker.{op}", handler)
