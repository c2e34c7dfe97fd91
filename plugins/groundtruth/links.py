"""
Extra links for labeling-job tasks: the job in the SageMaker Ground Truth console, its output folder in the S3 console.

How they reach the UI in Airflow 3: at the end of a try the task runner calls each link's ``get_link`` on the worker
and stores the URL in XCom under the link's ``xcom_key``; the API server only reads that XCom. Because a labeling
job can keep a task deferred for days, :func:`persist_labeling_job_links` also writes the finished URLs right away,
so the buttons work while the job is still running.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.providers.amazon.aws.links.base_aws import BaseAwsLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context


def _domain(aws_domain: str | None) -> str:
    return aws_domain or "aws.amazon.com"


class LabelingJobConsoleLink(BaseAwsLink):
    """The labeling job's details page in the SageMaker Ground Truth console of its region."""

    name = "Labeling Job"
    key = "groundtruth_labeling_job"
    format_str = (
        "https://{region_name}.console.{aws_domain}/sagemaker/groundtruth?region={region_name}"
        "#/labeling-jobs/details/{job_name}"
    )

    def format_link(self, **kwargs: Any) -> str:
        if not kwargs.get("job_name") or not kwargs.get("region_name"):
            return ""
        return super().format_link(**{**kwargs, "aws_domain": _domain(kwargs.get("aws_domain"))})


class LabelingJobOutputLink(BaseAwsLink):
    """The job's output folder ``<S3OutputPath>/<job name>/`` in the S3 console."""

    name = "Labeling Job Output"
    key = "groundtruth_labeling_job_output"
    format_str = "https://console.{aws_domain}/s3/buckets/{bucket}?region={region_name}&prefix={prefix}"

    def format_link(self, **kwargs: Any) -> str:
        if not kwargs.get("bucket"):
            return ""
        return super().format_link(
            **{**kwargs, "aws_domain": _domain(kwargs.get("aws_domain")), "prefix": quote(kwargs.get("prefix", ""))}
        )


def job_output_location(s3_output_path: str, job_name: str) -> tuple[str, str]:
    """``("bucket", "prefix/<job name>/")`` for the folder a job writes under ``S3OutputPath``."""
    without_scheme = s3_output_path.split("://", 1)[-1]
    bucket, _, prefix = without_scheme.partition("/")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/{job_name}/" if prefix else f"{job_name}/"


def persist_labeling_job_links(
    context: Context,
    operator: BaseOperator,
    *,
    region_name: str,
    aws_partition: str,
    job_name: str,
    s3_output_path: str | None,
) -> None:
    """Store both links' parameters (for ``get_link``) and their finished URLs (for the UI while the job runs)."""
    LabelingJobConsoleLink.persist(
        context=context, operator=operator, region_name=region_name, aws_partition=aws_partition, job_name=job_name
    )
    links: list[tuple[BaseAwsLink, dict[str, Any]]] = [
        (LabelingJobConsoleLink(), {"region_name": region_name, "job_name": job_name})
    ]
    if s3_output_path:
        bucket, prefix = job_output_location(s3_output_path, job_name)
        LabelingJobOutputLink.persist(
            context=context,
            operator=operator,
            region_name=region_name,
            aws_partition=aws_partition,
            bucket=bucket,
            prefix=prefix,
        )
        links.append((LabelingJobOutputLink(), {"region_name": region_name, "bucket": bucket, "prefix": prefix}))
    if not getattr(operator, "do_xcom_push", True):
        return
    for link, params in links:
        url = link.format_link(aws_domain=BaseAwsLink.get_aws_domain(aws_partition), **params)
        if url:
            context["ti"].xcom_push(key=link.xcom_key, value=url)


class ExperimentReportLink(BaseAwsLink):
    """The experiment's `report.html`: in the S3 console on AWS, or through a presigned URL on a local stand-in's
    endpoint (which has no console, and refuses an anonymous read of a private object as S3 does)."""

    name = "Experiment Report"
    key = "groundtruth_experiment_report"
    format_str = "https://console.{aws_domain}/s3/object/{bucket}?region={region_name}&prefix={object_key}"

    def format_link(self, **kwargs: Any) -> str:
        if not kwargs.get("bucket") or not kwargs.get("object_key"):
            return ""
        if kwargs.get("presigned_url"):
            return kwargs["presigned_url"]
        return super().format_link(
            **{**kwargs, "aws_domain": _domain(kwargs.get("aws_domain")), "object_key": quote(kwargs["object_key"])}
        )
