"""
``LabelingJobHook``: every boto3/aiobotocore call for SageMaker Ground Truth labeling jobs.

Besides the thin calls, this module holds the small pure helpers the operator, sensor and trigger share: the status
sets, what counts as a transient error, backoff with jitter, and the JSON-safe summary of a job description.
"""

from __future__ import annotations

import datetime
import random
import re
import time
from collections.abc import Callable, Mapping
from functools import cached_property, partial
from pathlib import Path
from typing import Any, TypeVar

from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
from airflow.providers.common.compat.sdk import AirflowException
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError

T = TypeVar("T")

NON_TERMINAL_STATES = frozenset({"Initializing", "InProgress", "Stopping"})
SUCCESS_STATES = frozenset({"Completed"})
FAILURE_STATES = frozenset({"Failed", "Stopped"})
TERMINAL_STATES = SUCCESS_STATES | FAILURE_STATES

THIRTY_DAYS = 30 * 24 * 3600.0  # the longest a labeling job can run

# Error codes that mean "ask again later", across the protocols botocore speaks (JSON, query, REST).
THROTTLING_ERROR_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "SlowDown",
        "BandwidthLimitExceeded",
        "ProvisionedThroughputExceededException",
    }
)
TRANSIENT_ERROR_CODES = THROTTLING_ERROR_CODES | {
    "InternalFailure",
    "InternalServerError",
    "InternalError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
    "PriorRequestNotComplete",
}


# Retries inside botocore, before our own loops see an error: adaptive mode also rate-limits the client once the
# service starts throttling. The connection's `config_kwargs` (or the operator's botocore_config) win key by key.
def default_botocore_config() -> Config:
    """A fresh default client config each time: botocore rewrites a Config's ``retries`` dict in place when it
    builds a client (``max_attempts`` becomes ``total_max_attempts``), so a shared instance would drift."""
    return Config(retries={"mode": "adaptive", "max_attempts": 12}, connect_timeout=10, read_timeout=60)


def pooled_client(aws_conn_id: str | None, region_name: str | None, service: str, pool: int):
    """A boto3 client from the Airflow connection whose HTTP pool fits `pool` threads sharing it (botocore keeps
    10 connections by default and discards the rest: the parallel HEADs and copies would reconnect every call)."""
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    config = default_botocore_config().merge(Config(max_pool_connections=max(10, pool)))
    return AwsBaseHook(aws_conn_id=aws_conn_id, client_type=service, region_name=region_name, config=config).get_conn()


_NOT_FOUND_MESSAGE = re.compile(r"not found|does not exist|could not find|cannot find", re.IGNORECASE)


def error_code(error: BaseException) -> str:
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", ""))
    return ""


def is_transient_error(error: BaseException) -> bool:
    """Throttling, 5xx and dropped connections: worth asking again, never a reason to fail the task."""
    if isinstance(error, ClientError):
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return error_code(error) in TRANSIENT_ERROR_CODES or status >= 500 or status == 429
    return isinstance(error, ConnectionError | HTTPClientError)


def is_not_found_error(error: BaseException) -> bool:
    code = error_code(error)
    if code in ("ResourceNotFound", "ResourceNotFoundException"):
        return True
    # Some SageMaker describe calls report a missing resource as a ValidationException.
    message = str(error.response.get("Error", {}).get("Message", "")) if isinstance(error, ClientError) else ""
    return code == "ValidationException" and bool(_NOT_FOUND_MESSAGE.search(message))


def backoff_delay(
    attempt: int, *, base: float = 2.0, cap: float = 300.0, rand: Callable[[float, float], float] | None = None
) -> float:
    """
    Exponential backoff with "equal jitter" for the ``attempt``-th consecutive transient error (0-based).

    Half of the delay is fixed so a throttled client really slows down; the random half spreads the many tasks that
    were throttled together.
    """
    ceiling = min(cap, base * 2 ** min(attempt, 30))
    uniform = rand or random.uniform
    return ceiling / 2 + uniform(0, ceiling / 2)


def json_safe(value: Any) -> Any:
    """Describe responses hold datetimes; XCom and trigger events must be plain JSON."""
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


# The part of DescribeLabelingJob that downstream code and trigger events need; the full description also carries
# the request (HumanTaskConfig, ...), which is large and already known to the DAG.
DESCRIPTION_KEYS = (
    "LabelingJobName",
    "LabelingJobArn",
    "LabelingJobStatus",
    "LabelCounters",
    "FailureReason",
    "LabelingJobOutput",
    "LabelAttributeName",
    "InputConfig",
    "OutputConfig",
    "CreationTime",
    "LastModifiedTime",
    "JobReferenceCode",
)


def description_subset(description: Mapping[str, Any]) -> dict[str, Any]:
    return json_safe({k: description[k] for k in DESCRIPTION_KEYS if k in description})


def label_counters(description: Mapping[str, Any]) -> dict[str, int]:
    counters = description.get("LabelCounters") or {}
    human = int(counters.get("HumanLabeled", 0))
    machine = int(counters.get("MachineLabeled", 0))
    return {
        "TotalLabeled": int(counters.get("TotalLabeled", human + machine)),
        "HumanLabeled": human,
        "MachineLabeled": machine,
        "FailedNonRetryableError": int(counters.get("FailedNonRetryableError", 0)),
        "Unlabeled": int(counters.get("Unlabeled", 0)),
    }


def percent_done(description: Mapping[str, Any]) -> float:
    """Share of objects that are labeled or failed for good; 0.0 before the job has counted its input."""
    c = label_counters(description)
    finished = c["TotalLabeled"] + c["FailedNonRetryableError"]
    total = finished + c["Unlabeled"]
    return round(100.0 * finished / total, 1) if total else 0.0


def progress_message(description: Mapping[str, Any]) -> str:
    c = label_counters(description)
    return (
        f"Labeling job {description.get('LabelingJobName')} is {description.get('LabelingJobStatus')}: "
        f"{c['HumanLabeled']} human-labeled, {c['MachineLabeled']} machine-labeled, "
        f"{c['FailedNonRetryableError']} failed, {c['Unlabeled']} unlabeled ({percent_done(description):.1f}% done)"
    )


def failure_message(description: Mapping[str, Any]) -> str:
    name = description.get("LabelingJobName")
    status = description.get("LabelingJobStatus")
    reason = description.get("FailureReason") or "no FailureReason given"
    return f"Labeling job {name} ended with status {status}: {reason}"


def _output(description: Mapping[str, Any], key: str) -> str | None:
    # Accepts both a raw description (nested LabelingJobOutput) and a summary (flat keys).
    output = description.get("LabelingJobOutput") or {}
    return output.get(key) or description.get(key)


def summarize_labeling_job(description: Mapping[str, Any]) -> dict[str, Any]:
    """
    The JSON-safe dict operators return (XCom) for a job.

    Service-named keys: ``LabelingJobName``, ``LabelingJobArn``, ``LabelingJobStatus``, ``LabelCounters`` (all five
    counters, zeros filled in), ``FailureReason``, ``OutputDatasetS3Uri`` (the output manifest),
    ``FinalActiveLearningModelArn``, ``InputManifestS3Uri``, ``S3OutputPath``, ``LabelAttributeName``,
    ``CreationTime``/``LastModifiedTime`` (ISO 8601).
    Domain-named duplicates: ``job_name``, ``job_arn``, ``status``, ``output_manifest_s3_uri``, ``final_model_arn``,
    ``human_labeled``, ``machine_labeled``, ``failed``, ``unlabeled``, ``total_labeled``, ``percent_done``.
    Idempotent: summarizing a summary gives the same dict.
    """
    counters = label_counters(description)
    input_config = description.get("InputConfig") or {}
    manifest = (input_config.get("DataSource") or {}).get("S3DataSource", {}).get("ManifestS3Uri") or description.get(
        "InputManifestS3Uri"
    )
    output_path = (description.get("OutputConfig") or {}).get("S3OutputPath") or description.get("S3OutputPath")
    summary = {
        "LabelingJobName": description.get("LabelingJobName"),
        "LabelingJobArn": description.get("LabelingJobArn"),
        "LabelingJobStatus": description.get("LabelingJobStatus"),
        "LabelCounters": counters,
        "FailureReason": description.get("FailureReason"),
        "OutputDatasetS3Uri": _output(description, "OutputDatasetS3Uri"),
        "FinalActiveLearningModelArn": _output(description, "FinalActiveLearningModelArn"),
        "InputManifestS3Uri": manifest,
        "S3OutputPath": output_path,
        "LabelAttributeName": description.get("LabelAttributeName"),
        "CreationTime": description.get("CreationTime"),
        "LastModifiedTime": description.get("LastModifiedTime"),
    }
    summary.update(
        {
            "job_name": summary["LabelingJobName"],
            "job_arn": summary["LabelingJobArn"],
            "status": summary["LabelingJobStatus"],
            "output_manifest_s3_uri": summary["OutputDatasetS3Uri"],
            "final_model_arn": summary["FinalActiveLearningModelArn"],
            "human_labeled": counters["HumanLabeled"],
            "machine_labeled": counters["MachineLabeled"],
            "failed": counters["FailedNonRetryableError"],
            "unlabeled": counters["Unlabeled"],
            "total_labeled": counters["TotalLabeled"],
            "percent_done": percent_done(description),
        }
    )
    return json_safe(summary)


def tags_to_dict(tags: Any) -> dict[str, str]:
    if isinstance(tags, Mapping):
        return {str(k): str(v) for k, v in tags.items()}
    return {str(t["Key"]): str(t.get("Value", "")) for t in tags or []}


class LabelingJobWaitTimeout(AirflowException):
    """The job did not finish within ``max_wait``; it is left running so a later try can reattach to it."""


class LabelingJobHook(SageMakerHook):
    """
    Interact with SageMaker Ground Truth labeling jobs (sync through boto3, async through aiobotocore).

    Same constructor as :class:`~airflow.providers.amazon.aws.hooks.sagemaker.SageMakerHook`
    (``aws_conn_id``, ``region_name``, ``verify``, ``config``). The endpoint comes from the connection's
    ``endpoint_url`` extra, so pointing ``aws_default`` at a local stand-in is all a test setup needs.
    Unless the connection or ``config`` says otherwise, botocore retries in adaptive mode with many attempts.
    """

    WAITER_ALIASES = {"labeling_job_complete": "LabelingJobComplete"}

    @property
    def config(self) -> Config:
        return default_botocore_config().merge(super().config)

    @cached_property
    def waiter_path(self) -> Path:
        # Our own JSON instead of the provider's sagemaker.json: the provider has no labeling-job waiter.
        return Path(__file__).parent / "waiters" / "labeling_job.json"

    def get_waiter(self, waiter_name: str, *args: Any, **kwargs: Any):
        """The provider's custom-waiter lookup, also accepting ``labeling_job_complete`` for ``LabelingJobComplete``."""
        return super().get_waiter(self.WAITER_ALIASES.get(waiter_name, waiter_name), *args, **kwargs)

    # ---------------------------------------------------------------------------------------------------- sync calls
    def create_labeling_job(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Call ``CreateLabelingJob`` with a complete request; returns the response (``LabelingJobArn``)."""
        return self.conn.create_labeling_job(**request)

    def describe_labeling_job(self, job_name: str) -> dict[str, Any]:
        return self.conn.describe_labeling_job(LabelingJobName=job_name)

    def find_labeling_job(self, job_name: str) -> dict[str, Any] | None:
        """The job's description, or ``None`` if no job has that name."""
        try:
            return self.describe_labeling_job(job_name)
        except ClientError as error:
            if is_not_found_error(error):
                return None
            raise

    def stop_labeling_job(self, job_name: str) -> bool:
        """Ask the service to stop the job; ``False`` if it is already finished or gone (nothing to stop)."""
        try:
            self.conn.stop_labeling_job(LabelingJobName=job_name)
        except ClientError as error:
            if is_not_found_error(error) or error_code(error) == "ValidationException":
                self.log.info("Labeling job %s was not stopped: %s", job_name, error)
                return False
            raise
        self.log.info("Requested stop of labeling job %s", job_name)
        return True

    def list_labeling_jobs(
        self, name_contains: str | None = None, max_results: int | None = None, **kwargs: Any
    ) -> list[dict[str, Any]]:
        """``ListLabelingJobs``, following ``NextToken`` until done or ``max_results`` summaries are collected."""
        config, max_results = self._preprocess_list_request_args(name_contains, max_results, **kwargs)
        request = partial(self.conn.list_labeling_jobs, **config)
        return self._list_request(request, "LabelingJobSummaryList", max_results=max_results)

    def add_tags(self, resource_arn: str, tags: Mapping[str, str] | list[dict[str, str]]) -> None:
        tag_list = [{"Key": k, "Value": v} for k, v in tags.items()] if isinstance(tags, Mapping) else list(tags)
        self.conn.add_tags(ResourceArn=resource_arn, Tags=tag_list)

    def list_tags(self, resource_arn: str) -> dict[str, str]:
        tags: dict[str, str] = {}
        request: dict[str, Any] = {"ResourceArn": resource_arn, "MaxResults": 100}
        while True:
            response = self.conn.list_tags(**request)
            tags.update(tags_to_dict(response.get("Tags")))
            if not response.get("NextToken"):
                return tags
            request["NextToken"] = response["NextToken"]

    def job_tags(self, description: Mapping[str, Any]) -> dict[str, str]:
        """A job's tags: from its description when the service includes them, else through ``ListTags``."""
        if "Tags" in description:
            return tags_to_dict(description["Tags"])
        return self.list_tags(description["LabelingJobArn"])

    # ----------------------------------------------------------------------------------------------- patient calls
    def retry_transient(
        self,
        call: Callable[[], T],
        *,
        what: str,
        max_attempts: int = 8,
        sleep: Callable[[float], Any] = time.sleep,
        rand: Callable[[float, float], float] | None = None,
    ) -> T:
        """Run ``call``, retrying transient errors with backoff beyond what botocore already retried."""
        for attempt in range(max_attempts):
            try:
                return call()
            except (ClientError, BotoCoreError) as error:
                if not is_transient_error(error) or attempt == max_attempts - 1:
                    raise
                delay = backoff_delay(attempt, rand=rand)
                self.log.warning("%s hit a transient error (%s); retrying in %.1fs", what, error, delay)
                sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def wait_for_labeling_job(
        self,
        job_name: str,
        *,
        check_interval: float = 60,
        max_wait: float = THIRTY_DAYS,
        sleep: Callable[[float], Any] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[float, float], float] | None = None,
        delay_first: bool = False,
    ) -> dict[str, Any]:
        """
        Poll until the job reaches a terminal status and return its last description (any terminal status).

        Each poll logs the status and counters. Throttling, 5xx and connection errors are retried with backoff and
        jitter for as long as ``max_wait`` allows; they never end the wait early. Past ``max_wait`` seconds this
        raises :class:`LabelingJobWaitTimeout` and leaves the job running. ``delay_first`` sleeps one
        ``check_interval`` before the first describe, for callers that have just described the job.
        """
        deadline = clock() + max_wait
        transient_errors = 0
        if delay_first:
            sleep(min(check_interval, max_wait))
        while True:
            try:
                description = self.describe_labeling_job(job_name)
            except (ClientError, BotoCoreError) as error:
                if not is_transient_error(error):
                    if is_not_found_error(error):
                        raise AirflowException(f"Labeling job {job_name} no longer exists: {error}") from error
                    raise
                delay = backoff_delay(transient_errors, base=max(1.0, min(check_interval, 5.0)), rand=rand)
                transient_errors += 1
                self.log.warning(
                    "Describing labeling job %s failed transiently (%s); trying again in %.1fs", job_name, error, delay
                )
            else:
                transient_errors = 0
                self.log.info(progress_message(description))
                if description["LabelingJobStatus"] in TERMINAL_STATES:
                    return description
                delay = check_interval
            remaining = deadline - clock()
            if remaining <= 0:
                raise LabelingJobWaitTimeout(
                    f"Labeling job {job_name} did not finish within {max_wait / 86400:.2f} days; it keeps running and "
                    "re-running this task reattaches to it."
                )
            sleep(min(delay, remaining))

    # ---------------------------------------------------------------------------------------------------- async calls
    async def describe_labeling_job_async(self, job_name: str, client: Any = None) -> dict[str, Any]:
        """``DescribeLabelingJob`` through aiobotocore; pass an open ``client`` to reuse one connection."""
        if client is not None:
            return await client.describe_labeling_job(LabelingJobName=job_name)
        async with await self.get_async_conn() as new_client:
            return await new_client.describe_labeling_job(LabelingJobName=job_name)

    async def stop_labeling_job_async(self, job_name: str, client: Any = None) -> bool:
        """Async :meth:`stop_labeling_job`."""
        try:
            if client is not None:
                await client.stop_labeling_job(LabelingJobName=job_name)
            else:
                async with await self.get_async_conn() as new_client:
                    await new_client.stop_labeling_job(LabelingJobName=job_name)
        except ClientError as error:
            if is_not_found_error(error) or error_code(error) == "ValidationException":
                self.log.info("Labeling job %s was not stopped: %s", job_name, error)
                return False
            raise
        self.log.info("Requested stop of labeling job %s", job_name)
        return True
