"""The active-learning DAG's tasks, owned by the library: `dags/active_learning.py` only wires them.

Shape of a run (the seed's Step Functions, unrolled into a fixed DAG):

    prepare → bootstrap.{select → label → merge} → round_1.{plan → train → model_requests → model → transform
    → auto_label → label → merge} → round_2.{...} → ... → round_<max_rounds>.{...} → export, report

The loop's state travels as the `state` XCom of `prepare`, every `auto_label` and every `merge`; a round's `plan`
reads the latest one that exists, so a bootstrap or human batch that was not needed (skipped) is simply passed
over (a `plan` has trigger rule `none_failed`). A `plan` that finds nothing left to label skips the rest of its round
and every later round at once, so a loop that finishes early shows its remaining rounds as skipped. `export`
fails, saying how many objects are unlabeled, when `max_rounds` rounds did not finish the job.

Every paid job (labeling, training, transform) is one of the retry-safe operators: a retried or cleared task
reattaches to the job its earlier try started, and a killed one stops it.
"""

from __future__ import annotations

import functools
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import Asset, TaskGroup, TriggerRule, task
from airflow.sdk.exceptions import AirflowException, AirflowSkipException, DownstreamTasksSkipped

from groundtruth.config import ActiveLearningConfig
from groundtruth.dagfactory import FamilyTasks, deterministic
from groundtruth.operators import CreateLabelingJobOperator

log = logging.getLogger(__name__)

TRAINING_SLACK = timedelta(hours=1)  # a training job ends at MaxRuntimeInSeconds; its wait may take a little longer


def _round_of(task_id: str) -> int:
    """k for a task of group `round_<k>`, else 0."""
    group = task_id.split(".", 1)[0]
    return int(group.removeprefix("round_")) if group.startswith("round_") and "." in task_id else 0


class HumanBatchLabelingOperator(CreateLabelingJobOperator):
    """Labels the batch the previous step selected (its request as `config`); skipped when it selected none."""

    def execute(self, context):
        if not self.config:
            raise AirflowSkipException("this step selected no objects for human labeling")
        return super().execute(context)


def final_manifest_asset(config: ActiveLearningConfig) -> Asset:
    """The loop's product: every run's final manifest (the event's `extra` names the exact URI)."""
    return Asset(name=f"active_learning_{config.name}.final_manifest", uri=config.output_prefix)


class ActiveLearningTasks(FamilyTasks[ActiveLearningConfig]):
    def __init__(self, config: ActiveLearningConfig, dag_id: str, include_dir: Path) -> None:
        super().__init__(config, dag_id)
        self.include_dir = include_dir
        self._state_tasks: list[str] = []  # the tasks that push a `state` XCom, in loop order

    # -- helpers -------------------------------------------------------------------------------------------------
    def _setup(self, params: dict | None, run_id: str):
        from groundtruth import active_learning_loop as loop

        cfg = self.run_config(params)
        return cfg, self.client(cfg, "s3"), loop.run_layout(cfg, run_id)

    @staticmethod
    def latest_state(ti: Any, candidates: list[str]) -> dict:
        """The `state` XCom of the last task in `candidates` that pushed one (skipped ones did not)."""
        for task_id in reversed(candidates):
            state = ti.xcom_pull(task_ids=task_id, key="state")
            if state is not None:
                return state
        raise AirflowException(f"no loop state found in any of {candidates}; was `prepare` cleared alone?")

    def _job_kwargs(self) -> dict[str, Any]:
        return {**self.job_settings(), "restart_failed_job": self.config.restart_failed_jobs}

    # -- prepare -------------------------------------------------------------------------------------------------
    def prepare(self):
        @task(task_id="prepare", multiple_outputs=True, execution_timeout=timedelta(hours=1))
        def prepare(params=None, run_id=None, ds=None) -> dict:
            from groundtruth import active_learning_loop as loop

            cfg, s3, layout = self._setup(params, run_id)
            with deterministic():
                return {"state": loop.prepare(s3, cfg, layout, ds, self.include_dir)}

        prepared = prepare()
        self._state_tasks.append(prepared.operator.task_id)
        return prepared

    # -- human batches -------------------------------------------------------------------------------------------
    def bootstrap(self, after: Any):
        """Bring human labels up to `bootstrap_share` with one labeling job (skipped when there are enough)."""
        candidates = list(self._state_tasks)
        dag_id = self.dag_id
        with TaskGroup("bootstrap", tooltip="human labels up to the bootstrap share (first unlabeled, file order)"):

            @task(task_id="select", multiple_outputs=True, execution_timeout=timedelta(minutes=30))
            def select(params=None, run_id=None, ti=None) -> dict:
                from groundtruth import active_learning_loop as loop

                cfg, s3, layout = self._setup(params, run_id)
                state = self.latest_state(ti, candidates)
                with deterministic():
                    batch = loop.bootstrap_batch(s3, cfg, layout, state, dag_id, run_id, "bootstrap.label")
                return {"state": state, "batch": batch, "labeling": batch and batch["request"]}

            selected = select()
            after >> selected
            merged = self._label_and_merge(selected, "bootstrap")
        return merged

    def _label_and_merge(self, selected: Any, where: str):
        labeled = self.labeling_task(
            "label",
            selected["labeling"],
            operator=HumanBatchLabelingOperator,
            restart_failed_job=self.config.restart_failed_jobs,
        )

        @task(task_id="merge", multiple_outputs=True, execution_timeout=timedelta(minutes=30))
        def merge(step: dict, job: dict, params=None, run_id=None) -> dict:
            from groundtruth import active_learning_loop as loop

            cfg, s3, layout = self._setup(params, run_id)
            with deterministic():
                return {"state": loop.merge_human_labels(s3, cfg, layout, step["state"], step["batch"], job, where)}

        merged = merge(selected, labeled.output)
        self._state_tasks.append(merged.operator.task_id)
        return merged

    # -- one round -----------------------------------------------------------------------------------------------
    def round(self, number: int, after: Any):
        """Train → model → transform → auto-label → human batch → merge; the whole group skips when nothing is left."""
        from groundtruth.operators import CreateModelOperator, CreateTrainingJobOperator, CreateTransformJobOperator

        cfg = self.config
        candidates = list(self._state_tasks)
        dag_id = self.dag_id
        group = f"round_{number}"
        with TaskGroup(group, tooltip=f"active-learning round {number}"):

            @task(
                task_id="plan",
                multiple_outputs=True,
                trigger_rule=TriggerRule.NONE_FAILED,
                execution_timeout=timedelta(minutes=30),
            )
            def plan(params=None, run_id=None, ti=None) -> dict:
                from groundtruth import active_learning_loop as loop

                cfg, s3, layout = self._setup(params, run_id)
                state = self.latest_state(ti, candidates)
                with deterministic():
                    planned = loop.plan_round(s3, cfg, layout, state, number, dag_id, run_id, f"{group}.train")
                if planned is None:
                    # The loop is done: skip the rest of this round and every later round in one step.
                    rest = [t for t in ti.task.dag.task_ids if _round_of(t) >= number and t != f"{group}.plan"]
                    log.info(
                        "Every one of the %d objects is labeled: rounds %d to %d are not needed",
                        state["objects"],
                        number,
                        cfg.max_rounds,
                    )
                    raise DownstreamTasksSkipped(tasks=rest)
                return planned

            planned = plan()
            after >> planned
            trained = CreateTrainingJobOperator(
                task_id="train",
                config=planned["training"],
                max_wait=timedelta(seconds=cfg.model.max_runtime_seconds) + TRAINING_SLACK,
                execution_timeout=timedelta(seconds=cfg.model.max_runtime_seconds) + 2 * TRAINING_SLACK,
                **self._job_kwargs(),
            )

            @task(task_id="model_requests", multiple_outputs=True, execution_timeout=timedelta(minutes=10))
            def model_requests(planned: dict, trained: dict, params=None, run_id=None) -> dict:
                from groundtruth import active_learning_loop as loop
                from groundtruth.requests import labeling_job_name

                cfg, _, layout = self._setup(params, run_id)
                name = labeling_job_name(dag_id, run_id, f"{group}.transform", number)
                return loop.model_and_transform_requests(cfg, layout, planned["state"], number, trained, name)

            requests = model_requests(planned, trained.output)
            model = CreateModelOperator(
                task_id="model",
                config=requests["model"],
                aws_conn_id=cfg.aws_conn_id,
                region_name=cfg.region,
                execution_timeout=timedelta(minutes=10),
            )
            transformed = CreateTransformJobOperator(
                task_id="transform",
                config=requests["transform"],
                max_wait=timedelta(seconds=cfg.transform_max_seconds),
                execution_timeout=timedelta(seconds=cfg.transform_max_seconds) + TRAINING_SLACK,
                **self._job_kwargs(),
            )
            model >> transformed  # the transform job runs the model this task registered

            @task(task_id="auto_label", multiple_outputs=True, execution_timeout=timedelta(hours=1))
            def auto_label(planned: dict, trained: dict, model: dict, transformed: dict, params=None, run_id=None):
                from groundtruth import active_learning_loop as loop

                cfg, s3, layout = self._setup(params, run_id)
                with deterministic():
                    return loop.auto_label(
                        s3, cfg, layout, planned, number, trained, model, transformed, dag_id, run_id, f"{group}.label"
                    )

            auto = auto_label(planned, trained.output, model.output, transformed.output)
            self._state_tasks.append(auto.operator.task_id)
            merged = self._label_and_merge(auto, f"rounds/{number}")
        return merged

    # -- the end -------------------------------------------------------------------------------------------------
    def export(self, after: Any):
        candidates = list(self._state_tasks)
        asset = final_manifest_asset(self.config)

        @task(
            task_id="export",
            trigger_rule=TriggerRule.NONE_FAILED,
            outlets=[asset],
            execution_timeout=timedelta(minutes=30),
        )
        def export(params=None, run_id=None, ti=None, outlet_events=None) -> dict:
            from groundtruth import active_learning_loop as loop

            cfg, s3, layout = self._setup(params, run_id)
            with deterministic():
                result = loop.export(s3, cfg, layout, self.latest_state(ti, candidates))
            outlet_events[asset].extra = {"manifest": result["FinalManifestS3Uri"], "run_id": run_id}
            return result

        exported = export()
        after >> exported
        return exported

    def report(self, after: Any):
        from groundtruth.operators import ExperimentReportOperator

        reported = ExperimentReportOperator(
            task_id="report",
            jobs=[],
            render=functools.partial(render_report, self.config, list(self._state_tasks)),
            aws_conn_id=self.config.aws_conn_id,
            region_name=self.config.region,
            trigger_rule=TriggerRule.NONE_FAILED,
            execution_timeout=timedelta(hours=1),
        )
        after >> reported
        return reported


def render_report(base: ActiveLearningConfig, candidates: list[str], s3, logs, sagemaker, context, jobs) -> dict:
    """`ExperimentReportOperator`'s callable: the run's history from the latest loop state, then
    `groundtruth.active_learning_loop.report`."""
    from airflow.providers.amazon.aws.hooks.base_aws import AwsGenericHook

    from groundtruth import active_learning_loop as loop
    from groundtruth.config import with_params

    cfg = with_params(base, context["params"])
    state = ActiveLearningTasks.latest_state(context["ti"], candidates)
    run_id = context["run_id"]
    endpoint = AwsGenericHook(aws_conn_id=cfg.aws_conn_id, client_type="s3").conn_config.endpoint_url
    return loop.report(s3, cfg, loop.run_layout(cfg, run_id), state, context["dag"].dag_id, run_id, endpoint)
