"""
Every boto3/aiobotocore call for the SageMaker jobs we run: ``SageMakerJobHook`` (any ``JobKind``: labeling,
training, transform — create, describe, find with tags, stop, wait) and ``LabelingJobHook`` (labeling-named calls).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from functools import cached_property, partial
from pathlib import Path
from typing import Any, TypeVar

from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
from airflow.providers.common.compat.sdk import AirflowException
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from groundtruth.aws_errors import backoff_delay, error_code, is_not_found_error, is_transient_error
from groundtruth.descriptions import tags_to_dict
from groundtruth.waiting import LABELING_JOB, THIRTY_DAYS, WAITERS_DIR, JobKind, JobWait

T = TypeVar("T")


# Retries inside botocore, before our own loops see an error: adaptive mode also rate-limits the client once the
# service starts throttling. The connection's `config_kwargs` (or the operator's botocore_config) win key by key.
def default_botocore_config() -> Config:
    """A fresh default client config each time: botocore rewrites a Config's ``retries`` dict in place when it
    builds a client (``max_attempts`` becomes ``total_max_attempts``), so a shared instance would drift."""
    return Config(retries={"mode": "adaptive", "max_attempts": 12}, connect_timeout=10, read_timeout=60)


def pooled_client(
    aws_conn_id: str | None, region_name: str | None, service: str, pool: int, config: Config | None = None
):
    """A boto3 client from the Airflow connection whose HTTP pool fits `pool` threads sharing it (botocore keeps
    10 connections by default and discards the rest: the parallel HEADs and copies would reconnect every call).
    ``config`` adds settings of its own (e.g. a signature version)."""
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    config = default_botocore_config().merge(Config(max_pool_connections=max(10, pool))).merge(config or Config())
    return AwsBaseHook(aws_conn_id=aws_conn_id, client_type=service, region_name=region_name, config=config).get_conn()


class LabelingJobWaitTimeout(AirflowException):
    """The job did not finish within ``max_wait``; it is left running so a later try can reattach to it."""


class JobGone(AirflowException):
    """The job being waited on no longer exists."""


class SageMakerJobHook(SageMakerHook):
    """
    Create, find, stop and wait on SageMaker jobs of any :class:`~groundtruth.waiting.JobKind`.

    Same constructor as :class:`~airflow.providers.amazon.aws.hooks.sagemaker.SageMakerHook` (``aws_conn_id``,
    ``region_name``, ``verify``, ``config``), so the provider's own SageMaker operators can use it. The endpoint comes
    from the connection's ``endpoint_url`` extra. Unless the connection or ``config`` says otherwise, botocore
    retries in adaptive mode with many attempts.
    """

    @property
    def config(self) -> Config:
        return default_botocore_config().merge(super().config)

    # ---------------------------------------------------------------------------------------------------- sync calls
    def create_job(self, kind: JobKind, request: Mapping[str, Any]) -> dict[str, Any]:
        return getattr(self.conn, kind.create_operation)(**request)

    def describe_job(self, kind: JobKind, job_name: str) -> dict[str, Any]:
        return getattr(self.conn, kind.describe_operation)(**{kind.name_param: job_name})

    def find_job(self, kind: JobKind, job_name: str) -> dict[str, Any] | None:
        """The job's description, or ``None`` if no job has that name."""
        try:
            return self.describe_job(kind, job_name)
        except ClientError as error:
            if is_not_found_error(error):
                return None
            raise

    def stop_job(self, kind: JobKind, job_name: str) -> bool:
        """Ask the service to stop the job; ``False`` if it is already finished or gone (nothing to stop)."""
        try:
            getattr(self.conn, kind.stop_operation)(**{kind.name_param: job_name})
        except ClientError as error:
            if is_not_found_error(error) or error_code(error) == "ValidationException":
                self.log.info("%s %s was not stopped: %s", kind.noun, job_name, error)
                return False
            raise
        self.log.info("Requested stop of %s %s", kind.noun.lower(), job_name)
        return True

    def running_jobs(self, kind: JobKind) -> list[dict[str, Any]]:
        """The summaries (name, ARN, status, times) of the account's jobs of `kind` in the hook's region that run
        (``kind.running_states``: a labeling job's Initializing too), every page."""
        paginator = self.conn.get_paginator(kind.list_operation)
        return [
            summary
            for status in kind.running_states
            for page in paginator.paginate(StatusEquals=status)
            for summary in page.get(kind.list_key, [])
        ]

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

    def tags_of(self, kind: JobKind, description: Mapping[str, Any]) -> dict[str, str]:
        """A job's tags: from its description when the service includes them, else through ``ListTags``."""
        if "Tags" in description:
            return tags_to_dict(description["Tags"])
        return self.list_tags(description[kind.arn_key])

    def find_with_tags(
        self,
        kind: JobKind,
        job_name: str,
        *,
        sleep: Callable[[float], Any] = time.sleep,
        rand: Callable[[float, float], float] | None = None,
    ) -> tuple[dict[str, Any], dict[str, str]] | None:
        """(description, tags) of the job, or None when no job has the name: what
        :func:`groundtruth.ownership.resolve_job` looks up, with transient errors retried."""
        description = self.retry_transient(
            lambda: self.find_job(kind, job_name),
            what=f"Describing {kind.noun.lower()} {job_name}",
            sleep=sleep,
            rand=rand,
        )
        if description is None:
            return None
        tags = self.retry_transient(
            lambda: self.tags_of(kind, description),
            what=f"Reading the tags of {kind.noun.lower()} {job_name}",
            sleep=sleep,
            rand=rand,
        )
        return description, tags

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

    def wait_for_job(
        self,
        kind: JobKind,
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

        The decisions are :class:`groundtruth.waiting.JobWait`'s (the trigger and the sensor use the same):
        progress logged per poll, transient errors backed off and never fatal. Past ``max_wait`` seconds this raises
        :class:`LabelingJobWaitTimeout` and leaves the job running; a vanished job raises :class:`JobGone`; any
        other error is raised as it came. ``delay_first`` sleeps one ``check_interval`` before the first describe,
        for callers that have just described the job.
        """
        wait = JobWait(
            kind,
            job_name,
            poll_interval=check_interval,
            deadline=clock() + max_wait,
            clock=clock,
            rand=rand,
            log=self.log,
        )
        if delay_first:
            sleep(min(check_interval, max_wait))
        while True:
            try:
                step = wait.observe(self.describe_job(kind, job_name))
            except (ClientError, BotoCoreError) as error:
                step = wait.observe_error(error)
                if step.result is not None and step.result.status == "error":
                    raise
            result = step.result
            if result is None:
                sleep(step.delay)
            elif result.status in ("success", "failed"):
                return result.description
            elif result.status == "timeout":
                raise LabelingJobWaitTimeout(result.message)
            else:
                raise JobGone(f"{kind.noun} {job_name} no longer exists ({result.message})")

    # ---------------------------------------------------------------------------------------------------- async calls
    async def describe_job_async(self, kind: JobKind, job_name: str, client: Any = None) -> dict[str, Any]:
        """The kind's describe call through aiobotocore; pass an open ``client`` to reuse one connection."""
        if client is not None:
            return await getattr(client, kind.describe_operation)(**{kind.name_param: job_name})
        async with await self.get_async_conn() as new_client:
            return await getattr(new_client, kind.describe_operation)(**{kind.name_param: job_name})

    async def stop_job_async(self, kind: JobKind, job_name: str, client: Any = None) -> bool:
        """Async :meth:`stop_job`."""
        try:
            if client is not None:
                await getattr(client, kind.stop_operation)(**{kind.name_param: job_name})
            else:
                async with await self.get_async_conn() as new_client:
                    await getattr(new_client, kind.stop_operation)(**{kind.name_param: job_name})
        except ClientError as error:
            if is_not_found_error(error) or error_code(error) == "ValidationException":
                self.log.info("%s %s was not stopped: %s", kind.noun, job_name, error)
                return False
            raise
        self.log.info("Requested stop of %s %s", kind.noun.lower(), job_name)
        return True


class LabelingJobHook(SageMakerJobHook):
    """
    Interact with SageMaker Ground Truth labeling jobs (sync through boto3, async through aiobotocore): the
    labeling-named calls over :class:`SageMakerJobHook`, ``ListLabelingJobs`` and our labeling-job waiter.
    """

    WAITER_ALIASES = {"labeling_job_complete": "LabelingJobComplete"}

    @cached_property
    def waiter_path(self) -> Path:
        # Our own JSON instead of the provider's sagemaker.json: the provider has no labeling-job waiter.
        return WAITERS_DIR / "labeling_job.json"

    def get_waiter(self, waiter_name: str, *args: Any, **kwargs: Any):
        """The provider's custom-waiter lookup, also accepting ``labeling_job_complete`` for ``LabelingJobComplete``."""
        return super().get_waiter(self.WAITER_ALIASES.get(waiter_name, waiter_name), *args, **kwargs)

    def create_labeling_job(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Call ``CreateLabelingJob`` with a complete request; returns the response (``LabelingJobArn``)."""
        return self.create_job(LABELING_JOB, request)

    def describe_labeling_job(self, job_name: str) -> dict[str, Any]:
        return self.describe_job(LABELING_JOB, job_name)

    def find_labeling_job(self, job_name: str) -> dict[str, Any] | None:
        return self.find_job(LABELING_JOB, job_name)

    def stop_labeling_job(self, job_name: str) -> bool:
        return self.stop_job(LABELING_JOB, job_name)

    def list_labeling_jobs(
        self, name_contains: str | None = None, max_results: int | None = None, **kwargs: Any
    ) -> list[dict[str, Any]]:
        """``ListLabelingJobs``, following ``NextToken`` until done or ``max_results`` summaries are collected."""
        config, max_results = self._preprocess_list_request_args(name_contains, max_results, **kwargs)
        request = partial(self.conn.list_labeling_jobs, **config)
        return self._list_request(request, "LabelingJobSummaryList", max_results=max_results)

    def job_tags(self, description: Mapping[str, Any]) -> dict[str, str]:
        return self.tags_of(LABELING_JOB, description)

    def find_job_with_tags(self, job_name: str, **kwargs: Any) -> tuple[dict[str, Any], dict[str, str]] | None:
        return self.find_with_tags(LABELING_JOB, job_name, **kwargs)

    def wait_for_labeling_job(self, job_name: str, **kwargs: Any) -> dict[str, Any]:
        """:meth:`wait_for_job` for a labeling job."""
        return self.wait_for_job(LABELING_JOB, job_name, **kwargs)

    async def describe_labeling_job_async(self, job_name: str, client: Any = None) -> dict[str, Any]:
        return await self.describe_job_async(LABELING_JOB, job_name, client)

    async def stop_labeling_job_async(self, job_name: str, client: Any = None) -> bool:
        return await self.stop_job_async(LABELING_JOB, job_name, client)
