"""The nightly DAG's tasks, owned by the library: `dags/nightly_labeling.py` only wires them.

Each task reads the run's config (the file's, with the run's Params) and the day of its shard, does one step of
`groundtruth.nightly` inside the task (parsing makes no AWS call), and fails at once on a deterministic error.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import Asset, task

from groundtruth.config import NightlyConfig
from groundtruth.dagfactory import FamilyTasks, deterministic
from groundtruth.nightly import LABEL_TASK_ID


class NightlyTasks(FamilyTasks[NightlyConfig]):
    def __init__(self, config: NightlyConfig, dag_id: str, latest_model: Asset) -> None:
        super().__init__(config, dag_id)
        self.latest_model = latest_model

    def _day(self, context: dict):
        from groundtruth.nightly import shard_day

        return shard_day(context.get("logical_date"), context.get("data_interval_start"), self.config.timezone)

    def select_shard(self):
        @task(task_id="select_shard", execution_timeout=timedelta(hours=2))
        def select_shard(params=None, **context) -> dict:
            from airflow.sdk.exceptions import AirflowSkipException

            from groundtruth import nightly

            cfg = self.run_config(params)
            try:
                with deterministic():
                    return nightly.select_shard(self.client(cfg, "s3"), cfg, self._day(context))
            except nightly.EmptyShard as empty:
                raise AirflowSkipException(f"nothing to label: {empty}") from None

        return select_shard()

    def copy_images(self, shard: Any):
        @task(task_id="copy_images", execution_timeout=timedelta(hours=4))
        def copy_images(shard: dict, params=None) -> dict:
            from groundtruth import nightly

            cfg = self.run_config(params)
            return nightly.copy_shard_images(self.client(cfg, "s3"), cfg, shard)

        return copy_images(shard)

    def write_inputs(self, shard: Any):
        @task(task_id="write_inputs", execution_timeout=timedelta(minutes=30))
        def write_inputs(shard: dict, params=None) -> dict:
            from groundtruth import nightly

            cfg = self.run_config(params)
            return nightly.write_shard_inputs(self.client(cfg, "s3"), cfg, shard)

        return write_inputs(shard)

    def read_latest_model(self):
        # depends_on_past + wait_for_downstream: this run starts from the model the previous run published, so it
        # waits for that run's read_latest_model and everything downstream of it (publish_model included).
        @task(
            task_id="read_latest_model",
            depends_on_past=True,
            wait_for_downstream=True,
            execution_timeout=timedelta(minutes=10),
        )
        def read_latest_model(params=None, **context) -> dict:
            from groundtruth import nightly

            cfg = self.run_config(params)
            with deterministic():
                return nightly.latest_model(
                    self.client(cfg, "s3"), self.client(cfg, "sagemaker"), cfg, self._day(context)
                )

        return read_latest_model()

    def build_request(self, shard: Any, inputs: Any, start_model: Any):
        dag_id = self.dag_id

        @task(task_id="build_request", multiple_outputs=True, execution_timeout=timedelta(minutes=10))
        def build_request(shard: dict, inputs: dict, start_model: dict, params=None, run_id=None) -> dict:
            from groundtruth import nightly
            from groundtruth.hooks import LabelingJobHook

            cfg = self.run_config(params)
            hook = LabelingJobHook(aws_conn_id=cfg.aws_conn_id, region_name=cfg.region)
            return nightly.plan_job(
                self.client(cfg, "s3"),
                hook,
                cfg,
                dag_id,
                run_id,
                shard,
                inputs,
                start_model,
                bool(params.get("force_relabel")),
            )

        return build_request(shard, inputs, start_model)

    def check_budget(self, plan: Any, shard: Any):
        dag_id = self.dag_id

        @task(task_id="check_budget", execution_timeout=timedelta(minutes=5))
        def check_budget(plan: dict, shard: dict) -> dict:
            from groundtruth import nightly

            with deterministic():
                return nightly.check_budget(plan, shard, dag_id)

        return check_budget(plan, shard)

    def label_shard(self, request: Any):
        # A second run of a shard reuses the job the first one made ("adopt"): the name identifies the shard.
        return self.labeling_task(LABEL_TASK_ID, request, action_if_job_exists="adopt")

    def publish_outputs(self, shard: Any, plan: Any, job: Any):
        dag_id = self.dag_id

        @task(task_id="publish_outputs", execution_timeout=timedelta(hours=1))
        def publish_outputs(shard: dict, plan: dict, job: dict, params=None, run_id=None) -> dict:
            from groundtruth import nightly

            cfg = self.run_config(params)
            return nightly.publish_outputs(self.client(cfg, "s3"), cfg, dag_id, run_id, shard, plan, job)

        return publish_outputs(shard, plan, job)

    def publish_model(self, shard: Any, job: Any):
        dag_id, latest_model = self.dag_id, self.latest_model

        # all_done: it must end success or skipped whatever happened upstream, because the next run's
        # read_latest_model waits for it (a failed job leaves the chain's latest model as it was).
        @task(
            task_id="publish_model",
            outlets=[latest_model],
            trigger_rule="all_done",
            execution_timeout=timedelta(minutes=10),
        )
        def publish_model(shard: dict | None, job: dict | None, params=None, run_id=None, outlet_events=None) -> dict:
            from airflow.sdk.exceptions import AirflowSkipException

            from groundtruth import nightly

            if not shard or not job or job.get("LabelingJobStatus") != "Completed":
                raise AirflowSkipException("no completed labeling job in this run: the chain's latest model stays")
            cfg = self.run_config(params)
            record = nightly.publish_model(self.client(cfg, "s3"), cfg, dag_id, run_id, shard, job)
            if record is None:
                raise AirflowSkipException("the chain's latest model stays (see the log for why)")
            outlet_events[latest_model].extra = {
                "model_arn": record["model_arn"],
                "job_name": record["job_name"],
                "shard": record["shard"]["key"],
                "day": record["shard"]["day"],
                "pointer_uri": record["pointer_uri"],
                "previous_model_arn": record["previous_model_arn"],
            }
            return record

        return publish_model(shard, job)
