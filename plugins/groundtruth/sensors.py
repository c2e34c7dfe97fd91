"""``LabelingJobSensor``: wait for a labeling job started elsewhere (another DAG, the console, a notebook)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.sensors.base_aws import AwsBaseSensor
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.common.compat.sdk import AirflowException, PokeReturnValue
from botocore.exceptions import BotoCoreError, ClientError

from groundtruth.hooks import (
    FAILURE_STATES,
    SUCCESS_STATES,
    THIRTY_DAYS,
    LabelingJobHook,
    LabelingJobWaitTimeout,
    failure_message,
    is_not_found_error,
    is_transient_error,
    progress_message,
    summarize_labeling_job,
)
from groundtruth.links import LabelingJobConsoleLink, LabelingJobOutputLink, persist_labeling_job_links
from groundtruth.triggers import LabelingJobTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context


class LabelingJobSensor(AwsBaseSensor[LabelingJobHook]):
    """
    Succeed when the labeling job ``job_name`` is Completed; fail when it is Failed or Stopped.

    The sensor does not own the job: killing the task never stops it.

    :param job_name: the labeling job to wait for (templated).
    :param deferrable: wait in the triggerer (default).
    :param poke_interval: seconds between status checks.
    :param timeout: seconds to wait in total (default 30 days, the longest a job can run).
    :return: the job summary, as :class:`~groundtruth.operators.CreateLabelingJobOperator` returns it.
    """

    aws_hook_class = LabelingJobHook
    template_fields: Sequence[str] = aws_template_fields("job_name")
    operator_extra_links = (LabelingJobConsoleLink(), LabelingJobOutputLink())
    ui_color = "#d5f5e3"

    def __init__(
        self,
        *,
        job_name: str,
        deferrable: bool = True,
        poke_interval: float = 60,
        timeout: float | timedelta = THIRTY_DAYS,
        **kwargs: Any,
    ):
        super().__init__(poke_interval=poke_interval, timeout=timeout, **kwargs)
        self.job_name = job_name
        self.deferrable = deferrable
        self._links_persisted = False

    def poke(self, context: Context) -> PokeReturnValue | bool:
        try:
            description = self.hook.describe_labeling_job(self.job_name)
        except (ClientError, BotoCoreError) as error:
            if is_transient_error(error):
                # Throttling and 5xx are "not yet", never a failure.
                self.log.warning("Describing labeling job %s failed transiently (%s)", self.job_name, error)
                return False
            if is_not_found_error(error):
                raise AirflowException(f"Labeling job {self.job_name} does not exist: {error}") from error
            raise
        if not self._links_persisted:
            persist_labeling_job_links(
                context,
                self,
                region_name=self.hook.conn_region_name,
                aws_partition=self.hook.conn_partition,
                job_name=self.job_name,
                s3_output_path=(description.get("OutputConfig") or {}).get("S3OutputPath"),
            )
            self._links_persisted = True
        self.log.info(progress_message(description))
        status = description.get("LabelingJobStatus")
        if status in SUCCESS_STATES:
            return PokeReturnValue(is_done=True, xcom_value=summarize_labeling_job(description))
        if status in FAILURE_STATES:
            raise AirflowException(failure_message(description))
        return False

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        first = self.poke(context)
        if isinstance(first, PokeReturnValue) and first.is_done:
            return first.xcom_value
        self.defer(
            trigger=LabelingJobTrigger(
                job_name=self.job_name,
                aws_conn_id=self.aws_conn_id,
                region_name=self.region_name,
                verify=self.verify,
                botocore_config=self.botocore_config,
                poke_interval=self.poke_interval,
                max_wait=float(self.timeout),
                stop_on_cancel=False,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=float(self.timeout)) + timedelta(hours=1),
        )
        return None  # not reached: defer() raises

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        if not event:
            raise AirflowException(f"Task {self.task_id}: the labeling-job trigger ended without an event")
        status = event.get("status")
        description = event.get("description")
        if status == "success" and description:
            return summarize_labeling_job(description)
        if status == "success":
            return summarize_labeling_job(self.hook.describe_labeling_job(self.job_name))
        if status == "failed" and description:
            raise AirflowException(failure_message(description))
        if status == "timeout":
            raise LabelingJobWaitTimeout(event.get("message") or f"Labeling job {self.job_name} did not finish")
        raise AirflowException(f"Error while waiting for labeling job {self.job_name}: {event.get('message')}")
