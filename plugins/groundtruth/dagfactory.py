"""What every DAG family's file shares: one DAG per config file, the run Params, the default_args, and the base
of the library-owned tasks (run config from Params, pooled clients, the labeling task, deterministic failures).

A bad config file becomes that DAG file's import error (naming the file and the field) while every valid config
beside it still becomes a DAG.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import html
from collections.abc import Callable, Iterator, MutableMapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Generic, TypeVar

from airflow.sdk import DAG, Param

from groundtruth.config import ConfigError, LabelingSettings, with_params

# The service runs a labeling job for up to 30 days; the task's own limit leaves a day for the trigger's deadline.
LABELING_TIMEOUT = timedelta(days=31)

# What the trigger form says about each field a run may change; type and bounds come from the config's own schema.
PARAM_DESCRIPTIONS = {
    "bucket": "S3 bucket for images, manifests and outputs",
    "prefix": "Key prefix under the bucket",
    "class_id": "Open Images LabelName of the class to label",
    "class_name": "Label shown to workers",
    "images": "How many images to select (with auto-labeling at least 2,500: each job needs 1,250 for a model)",
    "max_image_mb": "Skip images larger than this (MB)",
    "region": "AWS region of the jobs and the bucket",
    "role_arn": "Execution role Ground Truth assumes",
    "service_fee_usd": "Ground Truth fee per labeled object",
    "auto_labeling": "Use automated data labeling",
    "budget_usd": "Stop before launching when the worst case (objects x (fee + workers x price)) exceeds this",
    "workers_per_object": "Workers per object",
    "max_concurrent_tasks": "Most objects with workers at once (also the human batch size)",
    "task_time_limit_seconds": "Time a worker has per object",
}


class InvalidConfigs(DAG):
    """Carries config errors to the DagBag: it refuses validation, which records them as the DAG file's import
    error, while the valid DAGs defined beside it are still bagged."""

    def validate(self):
        raise ConfigError(self.description)


def build_dags(
    directory: Path,
    load: Callable[[Path], Any],
    build: Callable[[Any], DAG],
    invalid_dag_id: str,
    namespace: MutableMapping[str, Any],
) -> None:
    """Build a DAG from every `*.yaml` in `directory` into `namespace` (the DAG file's globals)."""
    errors = []
    for path in sorted(directory.glob("*.yaml")):
        try:
            dag = build(load(path))
        except ConfigError as exc:
            errors.append(str(exc))
            continue
        namespace[dag.dag_id] = dag
    if errors:
        namespace[f"_{invalid_dag_id}"] = InvalidConfigs(
            dag_id=invalid_dag_id, description=" | ".join(errors), schedule=None
        )


@functools.cache
def _schema(model: type[LabelingSettings]) -> dict[str, Any]:
    """A config class's JSON schema properties, built once per class (pydantic takes ~15 ms per call)."""
    return model.model_json_schema()["properties"]


class FormParam(Param):
    """A trigger-form Param that is cheap to deep-copy.

    Airflow deep-copies a DAG's Params into every task, once per class in the operator's hierarchy (`BaseOperator`'s
    `apply_defaults` → `get_merged_defaults`): about 40 copies of 13 to 16 Params a DAG, half of parsing the dags/
    folder. A form Param's description and schema are the config's text and bounds, fixed when `run_params` builds
    them and never changed afterwards, so a copy shares their contents and deep-copies only the value.
    Airflow's serializer writes a Param only when its class's dotted name is Airflow's own (any other class is
    boxed as the value of a new Param, which fails), so this class carries that name; what it writes is what a Param
    writes, and the scheduler and the API server read it back as Airflow's own (tested)."""

    __module__ = Param.__module__

    def __deepcopy__(self, memo: dict[int, Any] | None) -> FormParam:
        twin = object.__new__(type(self))
        twin.__dict__.update(self.__dict__)
        twin.value = copy.deepcopy(self.value, memo)
        twin.schema = dict(self.schema)
        return twin

    @classmethod
    def of(cls, param: Param) -> Param:
        if isinstance(param, cls):
            return param
        return cls(param.value, param.description, param.source, schema=param.schema)


FormParam.__name__ = FormParam.__qualname__ = Param.__name__


def run_params(config: LabelingSettings, **extra: Param) -> dict[str, Param]:
    """The trigger form: the config class's `PARAM_FIELDS` (defaults from the file, type and bounds from the
    config's schema), the workforce Params, then the family's `extra` Params (all as `FormParam`)."""
    schema = _schema(type(config))
    params: dict[str, Param] = {}
    for name in type(config).PARAM_FIELDS:
        field_schema = schema[name]
        rules = {
            k: field_schema[k]
            for k in ("type", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
            if k in field_schema
        }
        if "anyOf" in field_schema:  # an optional field: its types, null included
            rules["type"] = [alt.get("type", "null") for alt in field_schema["anyOf"]]
        params[name] = FormParam(getattr(config, name), description=PARAM_DESCRIPTIONS.get(name, name), **rules)
    workforce = config.workforce
    params["workforce_kind"] = FormParam(
        workforce.kind, enum=["public", "private", "vendor"], description="Who labels: public, private or vendor"
    )
    params["price_usd"] = FormParam(
        str(getattr(workforce, "price_usd", "0.036")),
        type="string",
        description="Public workforce price per task and worker, in USD (e.g. 0.036)",
    )
    params["workteam_arn"] = FormParam(
        getattr(workforce, "workteam_arn", None),
        type=["null", "string"],
        description="Work team ARN for a private or vendor workforce",
    )
    params.update({name: FormParam.of(param) for name, param in extra.items()})
    return params


def default_args(config: LabelingSettings, **extra: Any) -> dict[str, Any]:
    """Owner and retries from the config; transient failures back off exponentially up to 20 minutes."""
    return {
        "owner": config.owner,
        "retries": config.retries,
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=20),
        **extra,
    }


def escaped(values: dict[str, Any]) -> dict[str, str]:
    """Config text for a DAG's doc_md: data, never markup."""
    return {key: html.escape(str(value), quote=False) for key, value in values.items()}


_C = TypeVar("_C", bound=LabelingSettings)


class FamilyTasks(Generic[_C]):
    """The base of a family's library-owned tasks, bound to one config (the DAG's) and its DAG id."""

    def __init__(self, config: _C, dag_id: str) -> None:
        self.config = config
        self.dag_id = dag_id

    def run_config(self, params: dict | None) -> _C:
        """The config with this run's Params; a bad value fails the task at once (no retry can fix it)."""
        with deterministic():
            return with_params(self.config, dict(params or {}))

    @staticmethod
    def client(config: LabelingSettings, service: str):
        from groundtruth.hooks import pooled_client

        return pooled_client(config.aws_conn_id, config.region, service, config.copy_workers)

    def job_settings(self) -> dict[str, Any]:
        """What every retry-safe job task of the family shares: connection, deferrable wait at the config's check
        interval, and the config's job retry delay (5 minutes by default: a retry only reattaches)."""
        return {
            "aws_conn_id": self.config.aws_conn_id,
            "region_name": self.config.region,
            "wait_for_completion": True,
            "deferrable": True,
            "check_interval": self.config.check_interval_seconds,
            "retry_delay": timedelta(seconds=self.config.job_retry_delay_seconds),
        }

    def labeling_task(self, task_id: str, request: Any, operator: type | None = None, **kwargs: Any):
        """The family's labeling task (`operator`, default `CreateLabelingJobOperator`): deferrable, retry-safe,
        polling at the config's check interval."""
        from groundtruth.operators import CreateLabelingJobOperator

        return (operator or CreateLabelingJobOperator)(
            task_id=task_id,
            config=request,
            execution_timeout=LABELING_TIMEOUT,
            **{**self.job_settings(), **kwargs},
        )

    def stop_orphaned_jobs(self):
        """A teardown downstream of every job task of the DAG (those the DAG holds when this is called: call it last):
        once they have all ended, nobody waits for a job of this run any more, so stop any that is still running
        (`groundtruth.ownership.stop_orphaned_jobs`). Not downstream of the other tasks: a leaf can end
        (`upstream_failed`) while a sibling branch's job still runs, and the nightly chain's `wait_for_downstream`
        must not hang on it. It runs whether the run succeeded or failed, and does not decide the run's state."""
        from airflow.sdk import task

        from groundtruth.operators import RetrySafeJobMixin

        dag_id = self.dag_id

        @task(task_id="stop_orphaned_jobs", execution_timeout=timedelta(minutes=30))
        def stop_orphaned_jobs(kinds: list[str], params=None, run_id=None) -> list[str]:
            import logging

            from groundtruth.hooks import SageMakerJobHook
            from groundtruth.ownership import stop_orphaned_jobs

            try:  # the run's region (a Param in some families); with Params no task could use, the DAG's
                cfg = with_params(self.config, dict(params or {}))
            except ValueError:
                cfg = self.config
            hook = SageMakerJobHook(aws_conn_id=cfg.aws_conn_id, region_name=cfg.region)
            return stop_orphaned_jobs(hook, dag_id, run_id, logging.getLogger("groundtruth.sweep").warning, kinds)

        kinds: list[str] = []  # the kinds this DAG starts (filled once its job tasks are known): IAM need not allow
        sweep = stop_orphaned_jobs(kinds)  # listing any other
        job_tasks = [t for t in sweep.operator.dag.tasks if isinstance(t, RetrySafeJobMixin)]
        kinds.extend(sorted({t.job_kind.create_api for t in job_tasks}))
        job_tasks >> sweep.operator
        return sweep.as_teardown()


@contextlib.contextmanager
def deterministic() -> Iterator[None]:
    """A ValueError (a bad config or Param, a missing bucket, too few images, over budget) fails the task without
    retries: the same input fails the same way, so retrying only delays the message."""
    from airflow.sdk.exceptions import AirflowFailException

    try:
        yield
    except ValueError as error:
        raise AirflowFailException(str(error)) from error
