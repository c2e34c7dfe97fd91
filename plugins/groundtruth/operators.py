"""
Operators that start (or reattach to) a paid SageMaker job and wait for it — labeling, training, transform — plus
``CreateModelOperator`` and ``ExperimentReportOperator``.

The one rule: a retried, cleared or crashed task never starts a second paid job. ``RetrySafeJobMixin`` holds it
once, for every ``JobKind``; the training, model and transform operators extend the provider's own operators
(templating, integer fields, role expansion, lineage) and replace only their create-or-rename step.

* Every job it creates carries ownership tags, and before creating it walks the names ``<name>``, ``<name>-a1``, ...
  through :func:`groundtruth.ownership.resolve_job`: reattach to this task's own job, adopt (with
  ``action_if_job_exists="adopt"``) another run's job of the same work, or create at the first free name.
* ``ResourceInUse`` from ``CreateLabelingJob`` (an earlier try created the job and died before recording it, or a
  timed-out create did succeed) is treated as "exists" and goes through the same ownership check.

Why not Airflow 3.3's ``ResumableJobMixin``: docs/ARCHITECTURE.md, "Never a second paid job".
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.operators.sagemaker import (
    SageMakerModelOperator,
    SageMakerTrainingOperator,
    SageMakerTransformOperator,
)
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from groundtruth.aws_errors import error_code
from groundtruth.descriptions import json_safe, summarize_labeling_job
from groundtruth.hooks import LabelingJobHook, SageMakerJobHook, pooled_client
from groundtruth.links import (
    ExperimentReportLink,
    LabelingJobConsoleLink,
    LabelingJobOutputLink,
    persist_labeling_job_links,
)
from groundtruth.ownership import (
    DEFAULT_MAX_JOB_ATTEMPTS,
    JobNamesExhausted,
    JobNameTaken,
    Resolution,
    TaskIdentity,
    describe_owner,
    merge_tags,
    resolve_job,
    tag_value,
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
    SageMakerJobTrigger,
    TrainingJobTrigger,
    TransformJobTrigger,
    job_from_event,
    kill_should_stop_job,
    task_instance_state_with_timeout,
)
from groundtruth.waiting import LABELING_JOB, TRAINING_JOB, TRANSFORM_JOB, JobKind

__all__ = [
    "CreateLabelingJobOperator",
    "CreateModelOperator",
    "CreateTrainingJobOperator",
    "CreateTransformJobOperator",
    "ExperimentReportOperator",
    "RetrySafeJobMixin",
    "TaskIdentity",
    "describe_owner",
    "lineage_locations",
    "tag_value",
]

if TYPE_CHECKING:
    from airflow.sdk import Context


def lineage_locations(summary: Mapping[str, Any]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """``([(namespace, name)] inputs, [...] outputs)`` of a job in OpenLineage's S3 naming."""

    def location(uri: str | None) -> list[tuple[str, str]]:
        if not uri or "://" not in uri:
            return []
        bucket, _, key = uri.split("://", 1)[1].partition("/")
        return [(f"s3://{bucket}", key or "/")]

    summary = summarize_labeling_job(summary)
    return location(summary.get("InputManifestS3Uri")), location(summary.get("OutputDatasetS3Uri"))


class RetrySafeJobMixin:
    """
    Start a SageMaker job of ``job_kind`` — or reattach to the one an earlier try of this task started — and wait.

    * Before creating, it walks ``<name>``, ``<name>-a1``, ... through :func:`groundtruth.ownership.resolve_job`:
      this task's own job → reattach (wait / return / fail with its ``FailureReason``); ``restart_failed_job=True`` →
      a fresh attempt at the next free name; another run's job → ``action_if_job_exists`` (``"fail"`` |
      ``"increment"`` | ``"adopt"``: reuse another run's job of the same DAG unless it failed).
    * ``ResourceInUse`` from the create call (an earlier try created the job and died before recording it, or a
      timed-out create did succeed) goes through the same ownership check.
    * Waiting is deferrable (the kind's trigger) or synchronous; both use ``groundtruth.waiting``'s one rule.
    * Killing the task (marked failed/success, SIGTERM, execution timeout) stops the job, unless the task was only
      cleared: the next try reattaches. A synchronous wait ends as soon as the kill has stopped the job.

    Keyword arguments of every operator using it: ``wait_for_completion``, ``deferrable``, ``check_interval``
    (seconds between status checks), ``max_wait`` (timedelta or seconds; past it the task fails and the job keeps
    running), ``action_if_job_exists``, ``restart_failed_job``, ``stop_job_on_kill``, ``max_job_attempts``.
    """

    job_kind: ClassVar[JobKind]
    trigger_class: ClassVar[type[SageMakerJobTrigger]]

    # Seams for tests: time, randomness and the task-state lookup used by on_kill.
    _sleep: Callable[[float], Any] | None = None  # None: real time, cut short when on_kill stops the job
    _clock: Callable[[], float] = staticmethod(time.monotonic)
    _rand: Callable[[float, float], float] | None = None
    _ti_state: Callable[..., str | None] = staticmethod(task_instance_state_with_timeout)

    def __init__(
        self,
        *,
        wait_for_completion: bool = True,
        deferrable: bool = True,
        check_interval: float = 60,
        max_wait: timedelta | float = timedelta(days=30),
        action_if_job_exists: Literal["fail", "increment", "adopt"] = "fail",
        restart_failed_job: bool = False,
        stop_job_on_kill: bool = True,
        max_job_attempts: int = DEFAULT_MAX_JOB_ATTEMPTS,
        **kwargs: Any,
    ):
        # Cooperative: the rest goes to the operator base (ours or the provider's), whose own wait and name
        # settings are then replaced by these.
        super().__init__(**kwargs)
        if action_if_job_exists not in ("fail", "increment", "adopt"):
            raise ValueError(
                f"action_if_job_exists accepts 'fail', 'increment' and 'adopt', not {action_if_job_exists!r} "
                f"(task {self.task_id!r})"
            )
        if check_interval <= 0:
            raise ValueError(f"check_interval must be positive, got {check_interval!r}")
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
        self._kill_note: str | None = None  # set by on_kill once it has dealt with the job: the wait ends

    @property
    def max_wait_seconds(self) -> float:
        if isinstance(self.max_wait, timedelta):
            return self.max_wait.total_seconds()
        return float(self.max_wait)

    @property
    def _noun(self) -> str:
        return self.job_kind.noun.lower()

    # ------------------------------------------------------------------------------------------ per-kind extensions
    def _preprocess(self, config: dict[str, Any]) -> dict[str, Any]:
        """The kind's own preparation of a rendered config (the provider operators' integer fields, roles)."""
        return config

    def _persist_links(self, context: Context, job_name: str, request: Mapping[str, Any]) -> None:
        """Extra links of the job (labeling jobs have console and output links)."""

    def _remember(self, description: Mapping[str, Any]) -> None:
        self._last_description = dict(description)

    # ------------------------------------------------------------------------------------------------------ execute
    def execute(self, context: Context) -> dict[str, Any]:
        # Made here, not in __init__: a task object is deep-copied by Airflow and an Event cannot be.
        self._killed = threading.Event()
        identity = self._identity = TaskIdentity.from_context(context)
        request = self.prepare_request(identity)
        job_name, description = self._start_or_reattach(request, identity)
        self._persist_links(context, job_name, request)
        if description is None:
            description = self._describe(job_name)
        self._remember(description)
        self.log.info(self.job_kind.progress(description))

        status = self.job_kind.status(description)
        if status in self.job_kind.failure_states:
            raise self._failure(description)
        if status in self.job_kind.success_states or not self.wait_for_completion:
            return self.job_kind.summarize(description)

        if self.deferrable:
            self.defer(
                trigger=self.trigger_class(
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

        final = self.hook.wait_for_job(
            self.job_kind,
            job_name,
            check_interval=self.check_interval,
            max_wait=self.max_wait_seconds,
            sleep=self._pause,
            clock=self._clock,
            rand=self._rand,
            delay_first=True,
        )
        return self._finish(final)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        self._job_name = (event or {}).get("job_name")
        description = job_from_event(
            event, task_id=self.task_id, describe=self._describe, failure=self._failure, noun=self.job_kind.noun
        )
        self._remember(description)
        self.log.info(self.job_kind.progress(description))
        return self._finish(description)

    # ------------------------------------------------------------------------------------------------------ request
    def prepare_request(self, identity: TaskIdentity) -> dict[str, Any]:
        """The rendered ``config`` as a validated request, with integers restored and ``airflow:*`` tags merged."""
        api = self.job_kind.create_api
        config = self.config
        if isinstance(config, str):
            try:
                config = json.loads(config)
            except json.JSONDecodeError as error:
                raise AirflowFailException(f"Task {self.task_id}: config is not a JSON object: {error}") from error
        if not isinstance(config, Mapping):
            raise AirflowFailException(
                f"Task {self.task_id}: config must be a {api} request dict, got {type(config).__name__}"
            )
        request = coerce_request_types(self._preprocess(dict(config)), api)
        request["Tags"] = merge_tags(request.get("Tags"), identity.tags())
        try:
            validate_request(request, api)
        except RequestValidationError as error:
            # A bad request fails the same way on every retry: fail now, without retries.
            raise AirflowFailException(f"Task {self.task_id}: {error}") from error
        return request

    # ------------------------------------------------------------------------------------------ create or reattach
    def _start_or_reattach(self, request: dict[str, Any], identity: TaskIdentity) -> tuple[str, dict | None]:
        kind = self.job_kind
        base_name = request[kind.name_param]
        for _ in range(3):  # a create can lose the race at most a couple of times before the name settles
            resolution = self._resolve(base_name, identity)
            # Recorded before any create, so on_kill can stop the job even if we die right after creating it.
            self._job_name = resolution.job_name
            if resolution.action != "create":
                self.log.info(
                    "Reattaching to %s %s (%s), started earlier by %s",
                    self._noun,
                    resolution.job_name,
                    kind.status(resolution.description or {}),
                    identity,
                )
                return resolution.job_name, resolution.description
            attempt_request = {**request, kind.name_param: resolution.job_name}
            try:
                response = self.hook.retry_transient(
                    lambda r=attempt_request: self.hook.create_job(kind, r),
                    what=f"Creating {self._noun} {resolution.job_name}",
                    sleep=self._pause,
                    rand=self._rand,
                )
            except ClientError as error:
                if error_code(error) != "ResourceInUse":
                    raise
                self.log.warning(
                    "%s %s already exists although it did not a moment ago (an earlier try that crashed, "
                    "or a create that timed out but succeeded); checking whose it is",
                    kind.noun,
                    resolution.job_name,
                )
                continue
            self.log.info("Created %s %s: %s", self._noun, resolution.job_name, response.get(kind.arn_key))
            return resolution.job_name, None
        raise AirflowException(
            f"{kind.noun} {base_name}: the name kept appearing between describe and create; giving up after 3 rounds"
        )

    def _resolve(self, base_name: str, identity: TaskIdentity) -> Resolution:
        """Walk ``<name>``, ``<name>-a1``, ... (:func:`groundtruth.ownership.resolve_job`)."""
        kind = self.job_kind
        try:
            resolution = resolve_job(
                (with_attempt_suffix(base_name, k) for k in range(self.max_job_attempts)),
                functools.partial(self.hook.find_with_tags, kind, sleep=self._pause, rand=self._rand),
                identity,
                failed_states=kind.failure_states,
                action_if_job_exists=self.action_if_job_exists,
                restart_failed_job=self.restart_failed_job,
                status_key=kind.status_key,
            )
        except JobNameTaken as taken:
            raise AirflowFailException(str(taken)) from None
        except JobNamesExhausted:
            raise AirflowException(
                f"All {self.max_job_attempts} candidate names for {self._noun} {base_name} are taken "
                f"(raise max_job_attempts or choose another {kind.name_param})"
            ) from None
        for note in resolution.notes:
            self.log.info(note)
        return resolution

    # ------------------------------------------------------------------------------------------------------ helpers
    def _describe(self, job_name: str) -> dict[str, Any]:
        return self.hook.retry_transient(
            lambda: self.hook.describe_job(self.job_kind, job_name),
            what=f"Describing {self._noun} {job_name}",
            sleep=self._pause,
            rand=self._rand,
        )

    def _finish(self, description: Mapping[str, Any]) -> dict[str, Any]:
        kind = self.job_kind
        status = kind.status(description)
        if status in kind.success_states:
            return kind.summarize(description)
        if status in kind.failure_states:
            raise self._failure(description)
        raise AirflowException(f"{kind.noun} {description.get(kind.name_param)} is {status}, not finished")

    def _failure(self, description: Mapping[str, Any]) -> AirflowException:
        if self._kill_note is not None:  # the job ended because this task was killed: say that, not "Stopped"
            return AirflowException(self._kill_note)
        message = self.job_kind.failure_message(str(description.get(self.job_kind.name_param)), description)
        if self.restart_failed_job:
            return AirflowException(f"{message}. The next try starts a fresh attempt (restart_failed_job=True).")
        # Retrying would only find the same failed job again, so do not spend retries on it.
        return AirflowFailException(
            f"{message}. Re-running this task reports the same job; set restart_failed_job=True to start a new one."
        )

    def _pause(self, seconds: float) -> None:
        """Sleep between calls. Once on_kill has stopped the job the wait is over: Airflow 3's task runner only calls
        on_kill on SIGTERM and leaves the exit to the supervisor's SIGKILL, which `airflow tasks test` never sends."""
        killed = getattr(self, "_killed", None)
        if self._sleep is not None:
            self._sleep(seconds)
        elif killed is not None:
            killed.wait(seconds)
        else:
            time.sleep(seconds)
        if self._kill_note is not None:
            raise AirflowException(self._kill_note)

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
                "Task instance is now %s (cleared), so the next try reattaches: leaving %s %s running",
                state,
                self._noun,
                job_name,
            )
            return
        self.log.info("Task killed (task instance state %s): stopping %s %s", state, self._noun, job_name)
        try:
            self.hook.stop_job(self.job_kind, job_name)
        except (ClientError, BotoCoreError):
            self.log.exception("Could not stop %s %s; stop it in the SageMaker console", self._noun, job_name)
            self._kill_note = f"killed: {self._noun} {job_name} could not be stopped; stop it in the SageMaker console"
        else:
            self._kill_note = f"killed: {self._noun} {job_name} stopped"
        killed = getattr(self, "_killed", None)
        if killed is not None:
            killed.set()  # wakes a synchronous wait at once


_RETRY_SAFE_PARAMS = """
    :param wait_for_completion: wait until the job finishes (default). Otherwise return after create/reattach.
    :param deferrable: wait in the triggerer (default) instead of occupying a worker slot.
    :param check_interval: seconds between status checks.
    :param max_wait: how long to wait (``timedelta`` or seconds); default 30 days. Exceeding it fails the task and
        leaves the job running; re-running the task reattaches to it.
    :param action_if_job_exists: a job of this name exists but belongs to another run: ``"fail"`` (default),
        ``"increment"`` (use the next free ``-a<N>`` name) or ``"adopt"``: when the job was made by another run of
        the same DAG and did not fail, reattach to it as if it were this task's own (a name that identifies the
        work, not the run, makes a second run reuse the first one's job); otherwise the next free name.
    :param restart_failed_job: when this task's own job failed (or stopped), start a fresh attempt ``<name>-a<N>``
        instead of failing.
    :param stop_job_on_kill: stop the job when the task is killed, in the synchronous path (``on_kill``) and while
        deferred (the trigger's ``on_kill``). Clearing a task is not a kill: the cleared task reattaches.
    :param max_job_attempts: how many names (``<name>``, ``<name>-a1``, ...) to consider before giving up.
"""


class CreateLabelingJobOperator(RetrySafeJobMixin, AwsBaseOperator[LabelingJobHook]):
    """
    Create a SageMaker Ground Truth labeling job — or reattach to the one an earlier try of this task started.

    :param config: the ``CreateLabelingJob`` request (templated): a dict, or a JSON string. Its
        ``LabelingJobName`` is the base name (see :func:`groundtruth.requests.labeling_job_name` for run-scoped
        names). Integer members rendered as text by Jinja are converted back. The request is checked against
        botocore's service model before any call. ``Tags`` are kept; the ``airflow:*`` tags are added.
        :func:`groundtruth.requests.build_create_labeling_job_request` builds one from typed settings.
    {retry_safe_params}
    :param aws_conn_id: the Airflow AWS connection; its ``endpoint_url`` extra selects the endpoint.
    :param region_name: AWS region; default from the connection.
    :param verify: SSL verification.
    :param botocore_config: botocore client configuration dict (merged over our retry defaults).

    :return: the job summary (JSON-safe; keys documented in
        :func:`groundtruth.descriptions.summarize_labeling_job`): ``LabelingJobName``, ``LabelingJobArn``,
        ``LabelingJobStatus``, ``LabelCounters``, ``OutputDatasetS3Uri``, ``FinalActiveLearningModelArn``, ... plus
        snake_case duplicates such as ``job_name`` and ``final_model_arn``.
    """

    job_kind = LABELING_JOB
    trigger_class = LabelingJobTrigger
    aws_hook_class = LabelingJobHook
    template_fields: Sequence[str] = aws_template_fields("config")
    template_fields_renderers: ClassVar[dict[str, str]] = {"config": "json"}
    operator_extra_links = (LabelingJobConsoleLink(), LabelingJobOutputLink())
    ui_color = "#d5f5e3"

    def __init__(self, *, config: dict[str, Any] | str, **kwargs: Any):
        super().__init__(**kwargs)
        self.config = config

    def _persist_links(self, context: Context, job_name: str, request: Mapping[str, Any]) -> None:
        persist_labeling_job_links(
            context,
            self,
            region_name=self.hook.conn_region_name,
            aws_partition=self.hook.conn_partition,
            job_name=job_name,
            s3_output_path=request.get("OutputConfig", {}).get("S3OutputPath"),
        )

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


class CreateTrainingJobOperator(RetrySafeJobMixin, SageMakerTrainingOperator):
    """
    The provider's ``SageMakerTrainingOperator`` (templating, integer fields, role expansion, lineage), retry-safe:
    a retried or cleared task reattaches to its training job instead of starting a second one under a timestamped
    name, and a kill stops the job. ``config`` is a ``CreateTrainingJob`` request; its ``TrainingJobName`` is the
    base name (:func:`groundtruth.requests.labeling_job_name` makes run-scoped names).
    {retry_safe_params}
    :return: :func:`groundtruth.descriptions.summarize_training_job` of the completed job (``model_data_url``,
        ``metrics``, ...).
    """

    job_kind = TRAINING_JOB
    trigger_class = TrainingJobTrigger
    aws_hook_class = SageMakerJobHook

    def __init__(self, *, config: dict[str, Any], **kwargs: Any):
        # The provider's own existence check renames or fails; ours replaces it.
        super().__init__(config=config, check_if_job_exists=False, print_log=False, **kwargs)

    def _preprocess(self, config: dict[str, Any]) -> dict[str, Any]:
        self.config = config
        self.preprocess_config()
        return self.config

    def _remember(self, description: Mapping[str, Any]) -> None:
        super()._remember(description)
        self.serialized_training_data = json_safe(dict(description))  # what the provider's lineage reads


class CreateTransformJobOperator(RetrySafeJobMixin, SageMakerTransformOperator):
    """
    The provider's ``SageMakerTransformOperator`` for a plain ``CreateTransformJob`` request (create the model
    first with :class:`CreateModelOperator`), retry-safe: a retried or cleared task reattaches to its transform job
    instead of starting a second one, and a kill stops the job.
    {retry_safe_params}
    :return: :func:`groundtruth.descriptions.summarize_transform_job` of the completed job (``output_uri``, ...).
    """

    job_kind = TRANSFORM_JOB
    trigger_class = TransformJobTrigger
    aws_hook_class = SageMakerJobHook

    def __init__(self, *, config: dict[str, Any], **kwargs: Any):
        super().__init__(config=config, check_if_job_exists=False, check_if_model_exists=False, **kwargs)

    def _preprocess(self, config: dict[str, Any]) -> dict[str, Any]:
        if "Transform" in config or "Model" in config:
            raise AirflowFailException(
                f"Task {self.task_id}: pass a plain CreateTransformJob request; create the model with "
                "CreateModelOperator (a retried model step must not create a second model either)"
            )
        self.config = config
        self.preprocess_config()
        return self.config

    def _remember(self, description: Mapping[str, Any]) -> None:
        super()._remember(description)
        self.serialized_transform = json_safe(dict(description))  # what the provider's lineage reads


class CreateModelOperator(SageMakerModelOperator):
    """
    The provider's ``SageMakerModelOperator``, retry-safe: a model of this name made by this task (its ownership
    tags say so) is reused; one made by anyone else fails the task; otherwise the model is created with the tags.
    A model costs nothing until used, so there is no wait and nothing to stop.

    :return: ``{"ModelName", "ModelArn", "PrimaryContainer", "created": bool}``.
    """

    aws_hook_class = SageMakerJobHook

    def execute(self, context: Context) -> dict[str, Any]:
        identity = TaskIdentity.from_context(context)
        self.preprocess_config()
        request = coerce_request_types(dict(self.config), "CreateModel")
        request["Tags"] = merge_tags(request.get("Tags"), identity.tags())
        try:
            validate_request(request, "CreateModel")
        except RequestValidationError as error:
            raise AirflowFailException(f"Task {self.task_id}: {error}") from error
        name = request["ModelName"]
        for _ in range(3):  # a create can lose the race to an earlier try that is still running
            existing = self._find(name)
            if existing is not None:
                description, tags = existing
                if not identity.owns(tags):
                    raise AirflowFailException(
                        f"A model named {name} already exists and belongs to {describe_owner(tags)}, not to this task "
                        f"({identity}); use a run-scoped ModelName"
                    )
                self.log.info("Reusing model %s, created earlier by this task", name)
                return self._result(description, created=False)
            try:
                self.hook.retry_transient(lambda: self.hook.conn.create_model(**request), what=f"Creating model {name}")
            except ClientError as error:
                if error_code(error) not in ("ResourceInUse", "ValidationException") or "exist" not in str(error):
                    raise
                continue
            self.log.info("Created model %s", name)
            return self._result(self.hook.conn.describe_model(ModelName=name), created=True)
        raise AirflowException(f"Model {name}: the name kept appearing between describe and create")

    def _find(self, name: str) -> tuple[dict[str, Any], dict[str, str]] | None:
        from groundtruth.aws_errors import is_not_found_error

        try:
            description = self.hook.conn.describe_model(ModelName=name)
        except ClientError as error:
            if is_not_found_error(error):
                return None
            raise
        return description, self.hook.list_tags(description["ModelArn"])

    @staticmethod
    def _result(description: Mapping[str, Any], *, created: bool) -> dict[str, Any]:
        keys = ("ModelName", "ModelArn", "PrimaryContainer", "ExecutionRoleArn", "CreationTime")
        return json_safe({**{k: description[k] for k in keys if k in description}, "created": created})


for _operator in (CreateLabelingJobOperator, CreateTrainingJobOperator, CreateTransformJobOperator):
    _operator.__doc__ = (_operator.__doc__ or "").replace("    {retry_safe_params}\n", _RETRY_SAFE_PARAMS.lstrip("\n"))


# How long a local endpoint's report link stays valid: SigV4's longest presigned URL (clear render_report to renew).
REPORT_LINK_SECONDS = 7 * 24 * 3600


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
        endpoint = self.hook.conn_config.endpoint_url

        def client(service: str, config: Config | None = None):
            return pooled_client(self.aws_conn_id, region, service, pool=10, config=config)

        # SigV4, which S3's own requests use anyway, so that the same client also signs the link below
        s3 = client("s3", Config(signature_version="s3v4"))
        result = self.render(s3, client("logs"), client("sagemaker"), context, list(self.jobs))
        bucket, _, key = result["report_uri"].removeprefix("s3://").partition("/")
        # On AWS the link opens the object in the S3 console (the person's own login); a local endpoint has no
        # console and, like S3, refuses an anonymous read of a private object: link a presigned URL instead.
        presigned = None
        if endpoint:
            presigned = s3.generate_presigned_url(
                "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=REPORT_LINK_SECONDS
            )
        ExperimentReportLink.persist(
            context=context,
            operator=self,
            region_name=region,
            aws_partition=self.hook.conn_partition,
            bucket=bucket,
            object_key=key,
            presigned_url=presigned,
        )
        return result
