"""The experiment DAG's tasks, owned by the library: `dags/labeling_experiments.py` only wires them.

Each task reads the run's config (the file's, with the run's Params), does one stage of `groundtruth.experiment`
inside the task (so parsing makes no AWS call), and fails at once on a deterministic error.
"""

from __future__ import annotations

import functools
from datetime import timedelta
from typing import Any

from airflow.sdk import task

from groundtruth.config import ExperimentConfig
from groundtruth.dagfactory import FamilyTasks, deterministic


class ExperimentTasks(FamilyTasks[ExperimentConfig]):
    def select_images(self):
        @task(task_id="select_images", execution_timeout=timedelta(hours=2))
        def select_images(params=None, run_id=None) -> dict:
            from groundtruth import experiment

            cfg = self.run_config(params)
            with deterministic():
                return experiment.select(self.client(cfg, "s3"), cfg, experiment.run_layout(cfg, run_id))

        return select_images()

    def copy_images(self):
        @task(task_id="copy_images", execution_timeout=timedelta(hours=4))
        def copy_images(params=None, run_id=None) -> dict:
            from groundtruth import experiment

            cfg = self.run_config(params)
            return experiment.copy(self.client(cfg, "s3"), cfg, experiment.run_layout(cfg, run_id))

        return copy_images()

    def write_inputs(self):
        @task(task_id="write_inputs", execution_timeout=timedelta(minutes=30))
        def write_inputs(params=None, run_id=None) -> dict:
            from groundtruth import experiment

            cfg = self.run_config(params)
            return experiment.write_inputs(self.client(cfg, "s3"), cfg, experiment.run_layout(cfg, run_id))

        return write_inputs()

    def build_request(self, iteration: int, inputs: Any, previous: Any = None):
        """The CreateLabelingJob request of `iteration`; `previous` (iteration 1's result) gives its final model."""
        dag_id = self.dag_id

        @task(task_id=f"build_request_iteration_{iteration}", execution_timeout=timedelta(minutes=10))
        def build_request(written: dict, previous: dict | None = None, params=None, run_id=None) -> dict:
            from groundtruth import experiment

            cfg = self.run_config(params)
            with deterministic():
                return experiment.iteration_request(cfg, dag_id, run_id, iteration, written, previous)

        return build_request(inputs, previous)

    def label(self, iteration: int, request: Any):
        return self.labeling_task(f"label_iteration_{iteration}", request)

    def render_report(self, jobs: list):
        from groundtruth.operators import ExperimentReportOperator

        return ExperimentReportOperator(
            task_id="render_report",
            jobs=jobs,
            render=functools.partial(render_report, self.config),
            aws_conn_id=self.config.aws_conn_id,
            region_name=self.config.region,
            execution_timeout=timedelta(hours=1),
        )


def render_report(base: ExperimentConfig, s3, logs, sagemaker, context, jobs: list[dict]) -> dict:
    """`ExperimentReportOperator`'s callable: the run's config, its layout, then `groundtruth.experiment.report`."""
    from groundtruth import experiment
    from groundtruth.config import with_params

    cfg = with_params(base, context["params"])
    layout = experiment.run_layout(cfg, context["run_id"])
    return experiment.report(s3, logs, sagemaker, cfg, layout, context["dag"].dag_id, context["run_id"], jobs)
