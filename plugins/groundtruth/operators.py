"""
``CreateLabelingJobOperator``: start (or reattach to) a SageMaker Ground Truth labeling job and wait for it.

The one rule: a retried, cleared or crashed task never starts a second paid job.

* Every job this operator creates is tagged with its DAG, run, task, map index and try, plus
  ``airflow:task_instance_key`` — a hash of the exact (dag, run, task, map index), so ownership is decided exactly
  even when a run id does not fit the tag-value pattern and its readable tag had to be sanitized.
* Before creating, it describes the job of that name. A job of this task's run is reattached to (waited on if
  running, returned if Completed, reported if Failed/Stopped). ``restart_failed_job=True`` instead starts a fresh
  attempt named ``<name>-a1``, ``-a2``...; later tries find the latest attempt the same way. A job of that name
  from another run is ``action_if_job_exists``: ``"fail"`` (default), ``"increment"`` (use the next free suffix)
  or ``"adopt"`` (another run of the same DAG made it for the same work: reuse it unless it failed).
* ``ResourceInUse`` from ``CreateLabelingJob`` (an earlier try created the job and died before recording it, or a
  timed-out create did succeed) is treated as "exists" and goes through the same ownership check.

Airflow 3.3 ships ``ResumableJobMixin`` (task-state store + reconnect) for this problem. It is not used here: it
records the job id only after submission (a crash in between resubmits), it resubmits silently after a failed job
(we must not), and it covers only the synchronous path. Deterministic names plus ownership tags close the crash
window on both paths and work without any Airflow-side state.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException
from botocore.exceptions import BotoCoreError, ClientError

from groundtruth.hooks import (
    FAILURE_STATES,
    SUCCESS_STATES,
    LabelingJobHook,
    LabelingJobWaitTimeout,
    error_code,
    failure_message,
    progress_message,
    summarize_labeling_job,
)
from groundtruth.links import (
    ExperimentReportLink,
    LabelingJobConsoleLink,
    LabelingJobOutputLink,
    persist_labeling_job_links,
)
from groundtruth.requests import (
    RequestValidationError,
    coerce_request_types,
    validate_request,
    with_attempt_suffix,
)
from groundtruth.triggers import (
    UNKNOWN_STATE,
    LabelingJobTrigger,
    kill_should_stop_job,
    task_instance_state_with_timeout,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

TAG_DAG_ID = "airflow:dag_id"
TAG_RUN_ID = "airflow:run_id"
TAG_TASK_ID = "airflow:task_id"
TAG_MAP_INDEX = "airflow:map_index"
TAG_TRY_NUMBER = "airflow:try_number"
TAG_TASK_INSTANCE_KEY = "airflow:task_instance_key"

_TAG_VALUE_MAX = 256
_TAG_PUNCTUATION = set("_.:/=+-@ ")


def tag_value(value: object) -> str:
    """``value`` fitted to the tag-value pattern ``[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*`` and 256 characters."""
    text = "".join(ch if ch.isalnum() or ch in _TAG_PUNCTUATION else "_" for ch in str(value))
    return text[:_TAG_VALUE_MAX]


@dataclass(frozen=True)
class TaskIdentity:
    """The (dag, run, task, map index) a job belongs to; ``try_number`` is recorded but not compared."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1
    try_number: int | None = None

    @classmethod
    def from_context(cls, context: Context | Mapping[str, Any]) -> TaskIdentity:
        ti = context["ti"]
        map_index = getattr(ti, "map_index", -1)
        return cls(
            dag_id=ti.dag_id,
            run_id=ti.run_id,
            task_id=ti.task_id,
            map_index=-1 if map_index is None else int(map_index),
            try_number=getattr(ti, "try_number", None),
        )

    @property
    def key(self) -> str:
        exact = json.dumps([self.dag_id, self.run_id, self.task_id, self.map_index], separators=(",", ":"))
        return hashlib.sha256(exact.encode()).hexdigest()[:32]

    def tags(self) -> dict[str, str]:
        tags = {
            TAG_DAG_ID: tag_value(self.dag_id),
            TAG_RUN_ID: tag_value(self.run_id),
            TAG_TASK_ID: tag_value(self.task_id),
            TAG_MAP_INDEX: str(self.map_index),
            TAG_TASK_INSTANCE_KEY: self.key,
        }
        if self.try_number is not None:
            tags[TAG_TRY_NUMBER] = str(self.try_number)
        return tags

    def owns(self, tags: Mapping[str, str]) -> bool:
        return tags.get(TAG_TASK_INSTANCE_KEY) == self.key

    def __str__(self) -> str:
        mapped = f", map index {self.map_index}" if self.map_index >= 0 else ""
        return f"DAG {self.dag_id!r}, run {self.run_id!r}, task {self.task_id!r}{mapped}"


def describe_owner(tags: Mapping[str, str]) -> str:
    if TAG_TASK_INSTANCE_KEY not in tags:
        return "a job not created by this operator (it has no airflow:* tags)"
    return f"DAG {tags.get(TAG_DAG_ID)!r}, run {tags.get(TAG_RUN_ID)!r}, task {tags.get(TAG_TASK_ID)!r}"


def merge_tags(user_tags: Any, airflow_tags: Mapping[str, str]) -> Any:
    """The request's ``Tags`` plus ours; ours win on the same key. Malformed user tags are left for validation."""
    if user_tags is None:
        user_tags = []
    if not isinstance(user_tags, list) or not all(isinstance(t, Mapping) and "Key" in t for t in user_tags):
        return user_tags
    kept = [dict(t) for t in user_tags if t["Key"] not in airflow_tags]
    return kept + [{"Key": k, "Value": v} for k, v in airflow_tags.items()]


def lineage_locations(summary: Mapping[str, Any]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """``([(namespace, name)] inputs, [...] outputs)`` of a job in OpenLineage's S3 naming."""

    def location(uri: str | None) -> list[tuple[str, str]]:
        if not uri or "://" not in uri:
            return []
        bucket, _, key = uri.split("://", 1)[1].partition("/")
        return [(f"s3://{bucket}", key or "/")]

    summary = summarize_labeling_job(summary)
    return location(summary.get("InputManifestS3Uri")), location(summary.get("OutputDatasetS3Uri"))


@dataclass(frozen=True)
class _Resolution:
    action: Literal["create", "reattach"]
    job_name: str
    description: dict[str, Any] | None = None


class CreateLabelingJobOperator(AwsBaseOperator[LabelingJobHook]):
    """
    Create a SageMaker Ground Truth labeling job — or reattach to the one an earlier try of this task started.

    :param config: the ``CreateLabelingJob`` request (templated): a dict, or a JSON string. Its
        ``LabelingJobName`` is the base name (see :func:`groundtruth.requests.labeling_job_name` for run-scoped
        names). Integer members rendered as text by Jinja are converted back. The request is checked against
        botocore's service model before any call. ``Tags`` are kept; the ``airflow:*`` tags are added.
        :func:`groundtruth.requests.build_create_labeling_job_request` builds one from typed settings.
    :param wait_for_completion: wait until the job finishes (default). Otherwise return after create/reattach.
    :param deferrable: wait in the triggerer (default) instead of occupying a worker slot.
    :param check_interval: seconds between status checks.
    :param max_wait: how long to wait (``timedelta`` or seconds); default 30 days. Exceeding it fails the task and
        leaves the job running; re-running the task reattaches to it.
    :param action_if_job_exists: a job of this name exists but belongs to another run: ``"fail"`` (default),
        ``"increment"`` (use the next free ``-a<N>`` name) or ``"adopt"``: when the job was made by another run of
        the same DAG and did not end Failed/Stopped, reattach to it as if it were this task's own (a name that
        identifies the work, not the run, makes a second run reuse the first one's job); otherwise go on to the next
        free name as ``"increment"`` does. An adopted job is this task's to wait on and, on kill, to stop.
    :param restart_failed_job: when this task's own job ended Failed or Stopped, start a fresh attempt
        ``<name>-a<N>`` instead of failing.
    :param stop_job_on_kill: stop the job when the task is killed (marked failed/success, SIGTERM, execution timeout)
        in the synchronous path (``on_kill``) and while deferred (the trigger's ``on_kill``). Clearing a task is not
        a kill: the cleared task reattaches to the running job.
    :param max_job_attempts: how many names (``<name>``, ``<name>-a1``, ...) to consider before giving up.
    :param aws_conn_id: the Airflow AWS connection; its ``endpoint_url`` extra selects the endpoint.
    :param region_name: AWS region; default from the connection.
    :param verify: SSL verification.
    :param botocore_config: botocore client configuration dict (merged over our retry defaults).

    :return: the job summary (JSON-safe; keys documented in :func:`groundtruth.hooks.summarize_labeling_job`):
        ``LabelingJobName``, ``LabelingJobArn``, ``LabelingJobStatus``, ``LabelCounters``, ``OutputDatasetS3Uri``,
        ``FinalActiveLearningModelArn``, ... plus snake_case duplicates such as ``job_name`` and ``final_model_arn``.
    """

    aws_hook_class = LabelingJobHook
    template_fields: Sequence[str] = aws_template_fields("config")
    template_fields_renderers: ClassVar[dict[str, str]] = {"config": "json"}
    operator_extra_links = (LabelingJobConsoleLink(), LabelingJobOutputLink())
    ui_color = "#d5f5e3"

    # Seams for tests: time, randomness and the task-state lookup used by on_kill.
    _sleep: Callable[[float], Any] = staticmethod(time.sleep)
    _clock: Callable[[], float] = staticmethod(time.monotonic)
    _rand: Callable[[float, float], float] | None = None
    _ti_state: Callable[..., str | None] = staticmethod(task_instance_state_with_timeout)

    def __init__(
        self,
        *,
        config: dict[str, Any] | str,
        wait_for_completion: bool = True,
        deferrable: bool = True,
        check_interval: float = 60,
        max_wait: timedelta | float = timedelta(days=30),
        action_if_job_exists: Literal["fail", "increment", "adopt"] = "fail",
        restart_failed_job: bool = False,
        stop_job_on_kill: bool = True,
        max_job_attempts: int = 20,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if action_if_job_exists not in ("fail", "increment", "adopt"):
            raise ValueError(
                f"action_if_job_exists accepts 'fail', 'increment' and 'adopt', not {action_if_job_exists!r} "
                f"(task {kwargs.get('task_id')!r})"
            )
        if check_interval <= 0:
            raise ValueError(f"check_interval must be positive, got {check_interval!r}")
        self.config = config
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.check_interval = check_interval
        self.max_wait = max_wait
        self.action_if_job_exists = action_if_job_exists
        self.restart_failed_job = restart_failed_job
        self.stop_job_on_kill = stop_job_on_kill
        self.max_job_attempts = max(1, int(max_job_attempts))
        self._job_name: str | None = None
        self._identity: TaskIdentity | None = None
        self._last_description: dict[str, Any] | None = None

    @property
    def max_wait_seconds(self) -> float:
        if isinstance(self.max_wait, timedelta):
            return self.max_wait.total_seconds()
        return float(self.max_wait)

    # ------------------------------------------------------------------------------------------------------ execute
    def execute(self, context: Context) -> dict[str, Any]:
        identity = self._identity = TaskIdentity.from_context(context)
        request = self.prepare_request(identity)
        job_name, description = self._start_or_reattach(request, identity)

        persist_labeling_job_links(
            context,
            self,
            region_name=self.hook.conn_region_name,
            aws_partition=self.hook.conn_partition,
            job_name=job_name,
            s3_output_path=request.get("OutputConfig", {}).get("S3OutputPath"),
        )
        if description is None:
            description = self._describe(job_name)
        self._last_description = description
        self.log.info(progress_message(description))

        status = description.get("LabelingJobStatus")
        if status in FAILURE_STATES:
            raise self._failure(description)
        if status in SUCCESS_STATES or not self.wait_for_completion:
            return summarize_labeling_job(description)

        if self.deferrable:
            self.defer(
                trigger=LabelingJobTrigger(
                    job_name=job_name,
                    aws_conn_id=self.aws_conn_id,
                    region_name=self.region_name,
                    verify=self.verify,
                    botocore_config=self.botocore_config,
                    poke_interval=self.check_interval,
                    max_wait=self.max_wait_seconds,
                    stop_on_cancel=self.stop_job_on_kill,
                ),
                method_name="execute_complete",
                # Backstop only: the trigger reports its own deadline as a "timeout" event with a clear message.
                timeout=timedelta(seconds=self.max_wait_seconds) + timedelta(hours=1),
            )

        final = self.hook.wait_for_labeling_job(
            job_name,
            check_interval=self.check_interval,
            max_wait=self.max_wait_seconds,
            sleep=self._sleep,
            clock=self._clock,
            rand=self._rand,
            delay_first=True,
        )
        return self._finish(final)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        if not event:
            raise AirflowException(f"Task {self.task_id}: the labeling-job trigger ended without an event")
        job_name = self._job_name = event.get("job_name")
        status = event.get("status")
        description = event.get("description")
        if status == "success":
            if not description:
                description = self._describe(job_name)
            self._last_description = description
            self.log.info(progress_message(description))
            return self._finish(description)
        if status == "failed" and description:
            self._last_description = description
            raise self._failure(description)
        if status == "timeout":
            raise LabelingJobWaitTimeout(event.get("message") or f"Labeling job {job_name} did not finish in time")
        raise AirflowException(f"Error while waiting for labeling job {job_name}: {event.get('message')}")

    # ------------------------------------------------------------------------------------------------------ request
    def prepare_request(self, identity: TaskIdentity) -> dict[str, Any]:
        """The rendered ``config`` as a validated request, with integers restored and ``airflow:*`` tags merged."""
        config = self.config
        if isinstance(config, str):
            try:
                config = json.loads(config)
            except json.JSONDecodeError as error:
                raise AirflowFailException(f"Task {self.task_id}: config is not a JSON object: {error}") from error
        if not isinstance(config, Mapping):
            raise AirflowFailException(
                f"Task {self.task_id}: config must be a CreateLabelingJob request dict, got {type(config).__name__}"
            )
        request = coerce_request_types(config)
        request["Tags"] = merge_tags(request.get("Tags"), identity.tags())
        try:
            validate_request(request)
        except RequestValidationError as error:
            # A bad request fails the same way on every retry: fail now, without retries.
            raise AirflowFailException(f"Task {self.task_id}: {error}") from error
        return request

    # ------------------------------------------------------------------------------------------ create or reattach
    def _start_or_reattach(self, request: dict[str, Any], identity: TaskIdentity) -> tuple[str, dict | None]:
        base_name = request["LabelingJobName"]
        for _ in range(3):  # a create can lose the race at most a couple of times before the name settles
            resolution = self._resolve(base_name, identity)
            # Recorded before any create, so on_kill can stop the job even if we die right after creating it.
            self._job_name = resolution.job_name
            if resolution.action == "reattach":
                self.log.info(
                    "Reattaching to labeling job %s (%s), started earlier by %s",
                    resolution.job_name,
                    (resolution.description or {}).get("LabelingJobStatus"),
                    identity,
                )
                return resolution.job_name, resolution.description
            attempt_request = {**request, "LabelingJobName": resolution.job_name}
            try:
                response = self.hook.retry_transient(
                    lambda r=attempt_request: self.hook.create_labeling_job(r),
                    what=f"Creating labeling job {resolution.job_name}",
                    sleep=self._sleep,
                    rand=self._rand,
                )
            except ClientError as error:
                if error_code(error) != "ResourceInUse":
                    raise
                self.log.warning(
                    "Labeling job %s already exists although it did not a moment ago (an earlier try that crashed, "
                    "or a create that timed out but succeeded); checking whose it is",
                    resolution.job_name,
                )
                continue
            self.log.info("Created labeling job %s: %s", resolution.job_name, response.get("LabelingJobArn"))
            return resolution.job_name, None
        raise AirflowException(
            f"Labeling job {base_name}: the name kept appearing between describe and create; giving up after 3 rounds"
        )

    def _resolve(self, base_name: str, identity: TaskIdentity) -> _Resolution:
        """Walk ``<name>``, ``<name>-a1``, ...: reattach to this task's live or latest job, or pick a free name."""
        latest_own_failure: _Resolution | None = None
        for attempt in range(self.max_job_attempts):
            name = with_attempt_suffix(base_name, attempt)
            description = self.hook.retry_transient(
                lambda n=name: self.hook.find_labeling_job(n),
                what=f"Describing labeling job {name}",
                sleep=self._sleep,
                rand=self._rand,
            )
            if description is None:
                if latest_own_failure is not None and not self.restart_failed_job:
                    return latest_own_failure
                return _Resolution("create", name)
            tags = self.hook.retry_transient(
                lambda d=description: self.hook.job_tags(d),
                what=f"Reading the tags of labeling job {name}",
                sleep=self._sleep,
                rand=self._rand,
            )
            status = description.get("LabelingJobStatus")
            if identity.owns(tags):
                if status in FAILURE_STATES:
                    # Keep looking: a later attempt of ours may exist (restart_failed_job on an earlier try).
                    latest_own_failure = _Resolution("reattach", name, description)
                    if self.restart_failed_job:
                        self.log.warning(
                            "%s; restart_failed_job=True, so the next attempt name will be used",
                            failure_message(description),
                        )
                    continue
                return _Resolution("reattach", name, description)
            if (
                self.action_if_job_exists == "adopt"
                and status not in FAILURE_STATES
                and tags.get(TAG_DAG_ID) == tag_value(identity.dag_id)
            ):
                self.log.info(
                    "Adopting labeling job %s (%s), started by %s for the same work", name, status, describe_owner(tags)
                )
                return _Resolution("reattach", name, description)
            if self.action_if_job_exists == "fail":
                raise AirflowFailException(
                    f"A labeling job named {name} ({status}) already exists and belongs to {describe_owner(tags)}, "
                    f"not to this task ({identity}). Use a run-scoped LabelingJobName "
                    "(groundtruth.requests.labeling_job_name) or action_if_job_exists='increment'."
                )
            self.log.info("Labeling job %s belongs to %s; trying the next name", name, describe_owner(tags))
        if latest_own_failure is not None and not self.restart_failed_job:
            return latest_own_failure
        raise AirflowException(
            f"All {self.max_job_attempts} candidate names for labeling job {base_name} are taken "
            "(raise max_job_attempts or choose another LabelingJobName)"
        )

    # ------------------------------------------------------------------------------------------------------ helpers
    def _describe(self, job_name: str) -> dict[str, Any]:
        return self.hook.retry_transient(
            lambda: self.hook.describe_labeling_job(job_name),
            what=f"Describing labeling job {job_name}",
            sleep=self._sleep,
            rand=self._rand,
        )

    def _finish(self, description: Mapping[str, Any]) -> dict[str, Any]:
        status = description.get("LabelingJobStatus")
        if status in SUCCESS_STATES:
            return summarize_labeling_job(description)
        if status in FAILURE_STATES:
            raise self._failure(description)
        raise AirflowException(f"Labeling job {description.get('LabelingJobName')} is {status}, not finished")

    def _failure(self, description: Mapping[str, Any]) -> AirflowException:
        message = failure_message(description)
        if self.restart_failed_job:
            return AirflowException(f"{message}. The next try starts a fresh attempt (restart_failed_job=True).")
        # Retrying would only find the same failed job again, so do not spend retries on it.
        return AirflowFailException(
            f"{message}. Re-running this task reports the same job; set restart_failed_job=True to start a new one."
        )

    # ------------------------------------------------------------------------------------------------------ on_kill
    def on_kill(self) -> None:
        """Stop the job when the task is killed (synchronous path); see ``kill_should_stop_job`` for clears."""
        job_name = self._job_name
        if not (self.stop_job_on_kill and job_name):
            return
        identity = self._identity
        state = (
            self._ti_state(identity.dag_id, identity.run_id, identity.task_id, identity.map_index)
            if identity
            else UNKNOWN_STATE
        )
        if not kill_should_stop_job(state, in_triggerer=False):
            self.log.info(
                "Task instance is now %s (cleared), so the next try reattaches: leaving labeling job %s running",
                state,
                job_name,
            )
            return
        self.log.info("Task killed (task instance state %s): stopping labeling job %s", state, job_name)
        try:
            self.hook.stop_labeling_job(job_name)
        except (ClientError, BotoCoreError):
            self.log.exception("Could not stop labeling job %s; stop it in the SageMaker console", job_name)

    # -------------------------------------------------------------------------------------------------- openlineage
    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Input manifest in, output manifest out; ``None`` when the OpenLineage provider is not installed."""
        try:
            from airflow.providers.common.compat.openlineage.facet import Dataset
            from airflow.providers.openlineage.extractors import OperatorLineage
        except ImportError:
            return None
        inputs, outputs = lineage_locations(self._last_description or {})
        return OperatorLineage(
            inputs=[Dataset(namespace=namespace, name=name) for namespace, name in inputs],
            outputs=[Dataset(namespace=namespace, name=name) for namespace, name in outputs],
        )


class ExperimentReportOperator(AwsBaseOperator[LabelingJobHook]):
    """Render an experiment run's comparison report (HTML, JSON, PNGs), upload it beside the run, link to it.

    ``jobs`` are the three labeling tasks' return values (templated, usually their XComArgs); ``render`` is the
    callable doing the work (``groundtruth.experiment.report`` bound to the run's config), given the S3, Logs and
    SageMaker clients of this operator's connection.
    """

    aws_hook_class = LabelingJobHook
    template_fields: Sequence[str] = aws_template_fields("jobs")
    operator_extra_links = (ExperimentReportLink(),)

    def __init__(self, *, jobs: Any, render: Callable[..., dict], **kwargs: Any):
        super().__init__(**kwargs)
        self.jobs = jobs
        self.render = render

    def execute(self, context: Context) -> dict:
        region = self.hook.region_name
        session = self.hook.get_session(region_name=region)
        endpoint = self.hook.conn_config.endpoint_url

        def client(kind: str):
            return session.client(
                kind,
                endpoint_url=self.hook.conn_config.get_service_endpoint_url(kind),
                config=self.hook.config,
                verify=self.hook.verify,
            )

        result = self.render(client("s3"), client("logs"), client("sagemaker"), context, list(self.jobs))
        bucket, _, key = result["report_uri"].removeprefix("s3://").partition("/")
        ExperimentReportLink.persist(
            context=context,
            operator=self,
            region_name=region,
            aws_partition=self.hook.conn_partition,
            bucket=bucket,
            object_key=key,
            endpoint_url=endpoint,
        )
        return result
