"""JSON 1.1 wire format for the labeling-job operations: validate, call the backend, shape the answer.

Requests are validated against botocore's service model before the backend sees them; timestamps go out as epoch
seconds. Tag operations on labeling-job ARNs are answered here; on any other ARN they pass through to moto.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from emulator.clock import SimClock
from emulator.errors import PassThrough, not_found
from emulator.labeling.models import LabelingBackend
from emulator.labeling.validation import validate

if TYPE_CHECKING:
    from emulator.server import EmulatorApp


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

    # Tags on labeling jobs live with the job; everything else is moto's.
    def _job_for(self, arn: str):
        if ":labeling-job/" not in arn:
            raise PassThrough
        job = self.backend.by_arn(arn)
        if job is None:
            raise not_found(f"Could not find labeling job {arn}")
        return job

    def add_tags(self, region: str, body: dict) -> dict:
        job = self._job_for(body.get("ResourceArn", ""))
        validate("AddTags", body)
        self.backend.add_tags(job, body["Tags"])
        return {"Tags": body["Tags"]}

    def list_tags(self, region: str, body: dict) -> dict:
        job = self._job_for(body.get("ResourceArn", ""))
        validate("ListTags", body)
        return {"Tags": job.describe()["Tags"]}

    def delete_tags(self, region: str, body: dict) -> dict:
        job = self._job_for(body.get("ResourceArn", ""))
        validate("DeleteTags", body)
        self.backend.delete_tags(job, body["TagKeys"])
        return {}


def register(app: EmulatorApp, time_scale: float) -> LabelingBackend:
    backend = LabelingBackend(SimClock(time_scale), app.faults)
    responses = LabelingResponses(backend)
    for op, handler in {
        "CreateLabelingJob": responses.create_labeling_job,
        "DescribeLabelingJob": responses.describe_labeling_job,
        "StopLabelingJob": responses.stop_labeling_job,
        "ListLabelingJobs": responses.list_labeling_jobs,
        "AddTags": responses.add_tags,
        "ListTags": responses.list_tags,
        "DeleteTags": responses.delete_tags,
    }.items():
        app.register_json(f"SageMaker.{op}", handler)
    return backend
