"""JSON 1.1 wire format for the labeling-job operations: validate, call the backend, shape the answer.

Requests are validated against botocore's service model before the backend sees them; timestamps go out as epoch
seconds. Tags on labeling jobs are answered by `emulator.tags`, with those of the other jobs.
"""

from __future__ import annotations

from collections.abc import Callable

from emulator.labeling.models import LabelingBackend
from emulator.labeling.validation import validate

# What the wire layer offers a service: route `X-Amz-Target` to a handler of (region, JSON body) -> JSON body.
AddJsonHandler = Callable[[str, Callable[[str, dict], dict]], None]


class LabelingResponses:
    def __init__(self, backend: LabelingBackend) -> None:
        self.backend = backend

    def create_labeling_job(self, region: str, body: dict) -> dict:
        validate("CreateLabelingJob", body)
        job = self.backend.create(region, body)
        return {"LabelingJobArn": job.arn}

    def describe_labeling_job(self, region: str, body: dict) -> dict:
        validate("DescribeLabelingJob", body)
        return self.backend.get(region, body["LabelingJobName"]).describe()

    def stop_labeling_job(self, region: str, body: dict) -> dict:
        validate("StopLabelingJob", body)
        self.backend.stop(region, body["LabelingJobName"])
        return {}

    def list_labeling_jobs(self, region: str, body: dict) -> dict:
        validate("ListLabelingJobs", body)
        jobs, token = self.backend.list(region, body)
        result: dict = {"LabelingJobSummaryList": [job.summary() for job in jobs]}
        if token:
            result["NextToken"] = token
        return result


def register(add_json_handler: AddJsonHandler, backend: LabelingBackend) -> None:
    """Route the four labeling-job operations to `backend` (tags: `emulator.tags`)."""
    responses = LabelingResponses(backend)
    for op, handler in {
        "CreateLabelingJob": responses.create_labeling_job,
        "DescribeLabelingJob": responses.describe_labeling_job,
        "StopLabelingJob": responses.stop_labeling_job,
        "ListLabelingJobs": responses.list_labeling_jobs,
    }.items():
        add_json_handler(f"SageMaker.{op}", handler)
