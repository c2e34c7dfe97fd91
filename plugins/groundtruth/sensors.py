"""``LabelingJobSensor``: wait for a labeling job started elsewhere (another DAG, the console, a notebook)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.sensors.base_aws import AwsBaseSensor
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.common.compat.sdk import AirflowException, PokeReturnValue
from botocore.exceptions import BotoCoreError, ClientError

from groundtruth.descriptions import summarize_labeling_job
from groundtruth.hooks import LabelingJobHook
from groundtruth.links import LabelingJobConsoleLink, LabelingJobOutputLink, persist_labeling_job_links
from groundtruth.triggers import LabelingJobTrigger, job_from_event
from groundtruth.waiting import LABELING_JOB, THIRTY_DAYS, JobWait

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
        # One observation of the shared wait; the sensor's own timeout bounds the whole, so no deadline here.
        wait = JobWait(
            LABELING_JOB, self.job_name, poll_interval=self.poke_interval, deadline=float("inf"), log=self.log
        )
        try:
            description = self.hook.describe_labeling_job(self.job_name)
        except (ClientError, BotoCoreError) as error:
            step = wait.observe_error(error)
            if step.result is None:
                return False  # throttling and 5xx are "not yet", never a failure
            if step.result.status == "error":
                raise
            raise AirflowException(step.result.message) from error
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
        result = wait.observe(description).result
        if result is None:
            return False
        if result.status == "success":
            return PokeReturnValue(is_done=True, xcom_value=summarize_labeling_job(description))
        raise AirflowException(result.message)

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
        description = job_from_event(
            event,
            task_id=self.task_id,
            describe=self.hook.describe_labeling_job,
            failure=lambda d: AirflowException(LABELING_JOB.failure_message(self.job_name, d)),
        )
        return summarize_labeling_job(description)
