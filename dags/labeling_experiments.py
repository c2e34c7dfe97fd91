"""Labeling experiments: one DAG per `include/experiments/<name>.yaml`, named `labeling_experiment_<name>`.

The seed notebook's "pre-trained model" experiment as a pipeline. This file is wiring only: every step's logic
lives in `groundtruth.experiment` and runs inside the tasks, so parsing makes no AWS call and stays fast.
A config file that fails validation is reported as this file's import error, naming the file and the field, while
every valid experiment still loads.
"""

from __future__ import annotations

import functools
import os
from datetime import timedelta
from pathlib import Path

from airflow.sdk import DAG, Param, task

from groundtruth.config import ExperimentConfig, load_experiment
from groundtruth.dagfactory import build_dags
from groundtruth.operators import CreateLabelingJobOperator, ExperimentReportOperator

EXPERIMENTS_DIR = Path(os.environ.get("GT_INCLUDE_DIR", Path(__file__).resolve().parent.parent / "include"))
EXPERIMENTS_DIR = EXPERIMENTS_DIR / "experiments"
LABELING_TIMEOUT = timedelta(days=31)  # the service runs a job for up to 30 days

DOC = """
### Labeling experiment `{name}`

{description}

The seed notebook's **pre-trained model** experiment (SageMaker Ground Truth, bounding boxes), as one run:

1. **select_images** — walk the Open Images hierarchy for `{class_id}` ({class_name}) and all its subclasses, stream
   the annotation CSV, skip listed and oversized (> {max_mb} MB) images, keep the first {images} in file order.
2. **copy_images** — server-side copies into this run's prefix; what is already there is not copied again.
3. **write_inputs** — the two halves' input manifests, `class_labels.json` and the instruction template.
4. **label_iteration_1** (first half, auto-labeling) → its final model → **label_iteration_2** (second half, starting
   from that model). **label_iteration_3** (second half, no model) runs alongside iteration 1.
5. **render_report** — cost, human vs machine labels per round, training curves and label quality per job, next to
   the seed's published table.

Retrying or clearing any task is safe: every labeling task reattaches to its own job instead of starting another
(each job costs real money), and every S3 location is scoped to the run.
"""


def _params(config: ExperimentConfig) -> dict[str, Param]:
    workforce = config.workforce
    return {
        "bucket": Param(config.bucket, type="string", description="S3 bucket for images, manifests and outputs"),
        "prefix": Param(config.prefix, type="string", description="Key prefix under the bucket for this experiment"),
        "class_id": Param(config.class_id, type="string", description="Open Images LabelName of the class to label"),
        "class_name": Param(config.class_name, type="string", description="Label shown to workers"),
        "images": Param(config.images, type="integer", minimum=2, description="How many images to select"),
        "max_image_mb": Param(config.max_image_mb, type="number", description="Skip images larger than this (MB)"),
        "region": Param(config.region, type="string", description="AWS region of the jobs and the bucket"),
        "role_arn": Param(config.role_arn, type="string", description="Execution role Ground Truth assumes"),
        "workforce_kind": Param(
            workforce.kind, enum=["public", "private", "vendor"], description="Who labels: public, private or vendor"
        ),
        "price_usd": Param(
            str(getattr(workforce, "price_usd", "0.036")),
            type="string",
            description="Public workforce price per task and worker, in USD (e.g. 0.036)",
        ),
        "workteam_arn": Param(
            getattr(workforce, "workteam_arn", None),
            type=["null", "string"],
            description="Work team ARN for a private or vendor workforce",
        ),
        "service_fee_usd": Param(
            config.service_fee_usd, type="number", description="Ground Truth fee per labeled object (for the report)"
        ),
        "auto_labeling": Param(config.auto_labeling, type="boolean", description="Use automated data labeling"),
    }


def build_dag(config: ExperimentConfig) -> DAG:
    default_args = {
        "owner": config.owner,
        "retries": config.retries,
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=20),
    }
    with DAG(
        dag_id=f"labeling_experiment_{config.name}",
        description=config.description or f"Ground Truth pre-trained model experiment on {config.class_name}",
        doc_md=DOC.format(
            name=config.name,
            description=config.description,
            class_id=config.class_id,
            class_name=config.class_name,
            images=config.images,
            max_mb=config.max_image_mb,
        ),
        schedule=config.schedule,
        catchup=False,
        max_active_runs=1,
        tags=list(config.tags),
        params=_params(config),
        default_args=default_args,
    ) as dag:
        base = config

        def context_config(params: dict):
            from groundtruth.config import with_params

            return with_params(base, params)

        def clients(cfg: ExperimentConfig):
            from groundtruth.hooks import pooled_client

            return pooled_client(cfg.aws_conn_id, cfg.region, "s3", cfg.copy_workers)

        @task(task_id="select_images", execution_timeout=timedelta(hours=2))
        def select_images(params=None, run_id=None) -> dict:
            from groundtruth import experiment

            cfg = context_config(params)
            return experiment.select(clients(cfg), cfg, experiment.RunLayout.of(cfg, run_id))

        @task(task_id="copy_images", execution_timeout=timedelta(hours=4))
        def copy_images(selection: dict, params=None, run_id=None) -> dict:
            from groundtruth import experiment

            cfg = context_config(params)
            return experiment.copy(clients(cfg), cfg, experiment.RunLayout.of(cfg, run_id))

        @task(task_id="write_inputs", execution_timeout=timedelta(minutes=30))
        def write_inputs(copied: dict, params=None, run_id=None) -> dict:
            from groundtruth import experiment

            cfg = context_config(params)
            return experiment.write_inputs(clients(cfg), cfg, experiment.RunLayout.of(cfg, run_id))

        @task(execution_timeout=timedelta(minutes=10))
        def build_request(written: dict, iteration: int, previous: dict | None = None, params=None, run_id=None):
            from groundtruth import experiment
            from groundtruth.requests import labeling_job_name

            cfg = context_config(params)
            layout = experiment.RunLayout.of(cfg, run_id)
            model = (previous or {}).get("FinalActiveLearningModelArn")
            if previous is not None and cfg.auto_labeling and not model:
                raise ValueError(
                    f"iteration {iteration} needs iteration 1's final model, but job "
                    f"{previous.get('LabelingJobName')} reported no FinalActiveLearningModelArn"
                )
            name = labeling_job_name(dag.dag_id, run_id, f"label_iteration_{iteration}", iteration)
            return experiment.job_request(
                cfg, iteration, experiment.inputs_for(iteration, written, layout), name, model
            )

        def label(iteration: int, request) -> CreateLabelingJobOperator:
            return CreateLabelingJobOperator(
                task_id=f"label_iteration_{iteration}",
                config=request,
                aws_conn_id=config.aws_conn_id,
                region_name=config.region,
                wait_for_completion=True,
                deferrable=True,
                check_interval=60,
                execution_timeout=LABELING_TIMEOUT,
                retry_delay=timedelta(minutes=5),
            )

        written = write_inputs(copy_images(select_images()))
        job_1 = label(1, build_request.override(task_id="build_request_iteration_1")(written, 1))
        job_2 = label(2, build_request.override(task_id="build_request_iteration_2")(written, 2, job_1.output))
        job_3 = label(3, build_request.override(task_id="build_request_iteration_3")(written, 3))
        ExperimentReportOperator(
            task_id="render_report",
            jobs=[job_1.output, job_2.output, job_3.output],
            render=functools.partial(_render_report, base),
            aws_conn_id=config.aws_conn_id,
            region_name=config.region,
            execution_timeout=timedelta(hours=1),
        )
    return dag


def _render_report(base: ExperimentConfig, s3, logs, sagemaker, context, jobs: list[dict]) -> dict:
    from groundtruth import experiment
    from groundtruth.config import with_params

    cfg = with_params(base, context["params"])
    layout = experiment.RunLayout.of(cfg, context["run_id"])
    return experiment.report(s3, logs, sagemaker, cfg, layout, context["dag"].dag_id, context["run_id"], jobs)


build_dags(EXPERIMENTS_DIR, load_experiment, build_dag, "labeling_experiment_invalid_configs", globals())
