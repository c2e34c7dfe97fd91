"""Nightly labeling: one DAG per `include/nightly/<name>.yaml`, named `nightly_labeling_<name>`.

Each run labels the shard of its day and chains the active-learning model from night to night. This file is
wiring only: every step's logic lives in `groundtruth.nightly` and runs inside the tasks, so parsing makes no AWS
call and stays fast. A config file that fails validation is reported as this file's import error, naming the file
and the field, while every valid nightly still loads.
"""

from __future__ import annotations

import functools
import html
import os
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from airflow.sdk import DAG, Asset, CronDataIntervalTimetable, Param, task

from groundtruth.config import NightlyConfig, OpenImagesShards, load_nightly
from groundtruth.dagfactory import build_dags
from groundtruth.nightly import notify_failure, pointer_uri
from groundtruth.operators import CreateLabelingJobOperator

NIGHTLY_DIR = Path(os.environ.get("GT_INCLUDE_DIR", Path(__file__).resolve().parent.parent / "include")) / "nightly"
LABELING_TIMEOUT = timedelta(days=31)  # the service runs a job for up to 30 days

DOC = """
### Nightly labeling `{name}`

{description}

Every night ({schedule}, {timezone}) one run labels **the shard of its day** — {shard_doc} — and chains the
auto-labeling model: the job starts from the chain's latest final model and, when it completes with one, its own
final model becomes the latest (`{pointer}` and an event on the asset `{asset}` whose extra carries `model_arn`).

1. **select_shard** — fix the shard's content in `shard.json` (reused on reruns); an empty shard skips the run.
2. **copy_images** → **write_inputs** — the shard's images, input manifest and worker template.
3. **read_latest_model** — the chain's latest model (or the seed model, or none). It waits for the previous run's
   model step (`depends_on_past`, `wait_for_downstream`), so runs chain in date order even in a backfill.
4. **build_request** → **check_budget** — a new job's worst case, objects x (service fee + workers x price), must fit
   `budget_usd`, else the run stops before any job exists. A job the shard already has costs nothing: it is reused.
5. **label_shard** — one job per shard, named after the shard (a second run of the shard reuses its job, retries
   reattach); `force_relabel` starts one fresh job for the run.
6. **publish_outputs** (stable `output.manifest` + `summary.json` per shard) and **publish_model** (the pointer;
   only forward in shard order).

Failures are logged and, with `notify_sns_topic_arn`, published to SNS. Backfill in date order:
`airflow backfill create --dag-id {dag_id} --from-date ... --to-date ... --reprocess-behavior failed`.
"""


def _params(config: NightlyConfig) -> dict[str, Param]:
    workforce = config.workforce
    return {
        "force_relabel": Param(
            False,
            type="boolean",
            description="Label the shard again with a fresh job even if it already has a completed one (costs money)",
        ),
        "budget_usd": Param(
            config.budget_usd,
            type="number",
            minimum=0,
            description="Stop before launching when the worst case (objects x (fee + workers x price)) exceeds this",
        ),
        "seed_model_arn": Param(
            config.seed_model_arn,
            type=["null", "string"],
            description="Model the chain's first run starts from (ignored once the chain has a latest model)",
        ),
        "auto_labeling": Param(config.auto_labeling, type="boolean", description="Use automated data labeling"),
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
        "workers_per_object": Param(
            config.workers_per_object, type="integer", minimum=1, maximum=9, description="Workers per image"
        ),
        "max_concurrent_tasks": Param(
            config.max_concurrent_tasks,
            type="integer",
            minimum=1,
            maximum=5000,
            description="Most images with workers at once (also the human batch size)",
        ),
        "task_time_limit_seconds": Param(
            config.task_time_limit_seconds,
            type="integer",
            minimum=30,
            maximum=28800,
            description="Time a worker has per image",
        ),
        "service_fee_usd": Param(
            config.service_fee_usd, type="number", minimum=0, description="Ground Truth fee per labeled object"
        ),
        "notify_sns_topic_arn": Param(
            config.notify.sns_topic_arn,
            type=["null", "string"],
            description="SNS topic that receives failure notifications (none: failures are only logged)",
        ),
    }


def _shard_doc(config: NightlyConfig) -> str:
    shards = config.shards
    if isinstance(shards, OpenImagesShards):
        return (
            f"slice k of {shards.images_per_shard} images of Open Images class `{shards.class_id}` "
            f"({config.class_name}), k = days since {config.start_date}"
        )
    return f"every image under `{shards.uri}`"


def build_dag(config: NightlyConfig) -> DAG:
    dag_id = f"nightly_labeling_{config.name}"
    # A named asset: its identity stays when the chain's bucket or prefix moves; the events' extra says where.
    latest_model = Asset(name=f"{dag_id}.latest_model", group="model")
    default_args = {
        "owner": config.owner,
        "retries": config.retries,
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=20),
        "on_failure_callback": functools.partial(notify_failure, base=config),
    }
    day = config.start_date
    start = datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(config.timezone))
    with DAG(
        dag_id=dag_id,
        description=config.description or f"Nightly Ground Truth labeling of {config.class_name}",
        # Config text is data, never markup: escaped before it reaches the UI's rendered markdown.
        doc_md=DOC.format(
            **{
                key: html.escape(str(value), quote=False)
                for key, value in {
                    "name": config.name,
                    "description": config.description,
                    "schedule": config.schedule,
                    "timezone": config.timezone,
                    "shard_doc": _shard_doc(config),
                    "pointer": pointer_uri(config),
                    "asset": latest_model.name,
                    "dag_id": dag_id,
                }.items()
            }
        ),
        schedule=CronDataIntervalTimetable(config.schedule, timezone=config.timezone),
        start_date=start,
        catchup=config.catchup,
        max_active_runs=config.max_active_runs,
        tags=list(config.tags),
        params=_params(config),
        default_args=default_args,
    ) as dag:
        base = config

        def run_config(params: dict) -> NightlyConfig:
            from groundtruth.config import nightly_with_params

            return nightly_with_params(base, params)

        def run_day(context: dict):
            from groundtruth.nightly import shard_day

            return shard_day(context.get("logical_date"), context.get("data_interval_start"), base.timezone)

        def client(cfg: NightlyConfig, service: str):
            from groundtruth.hooks import pooled_client

            return pooled_client(cfg.aws_conn_id, cfg.region, service, cfg.copy_workers)

        @task(task_id="select_shard", execution_timeout=timedelta(hours=2))
        def select_shard(params=None, **context) -> dict:
            from airflow.sdk.exceptions import AirflowSkipException

            from groundtruth import nightly

            cfg = run_config(params)
            try:
                return nightly.select_shard(client(cfg, "s3"), cfg, run_day(context))
            except nightly.EmptyShard as empty:
                raise AirflowSkipException(f"nothing to label: {empty}") from None

        @task(task_id="copy_images", execution_timeout=timedelta(hours=4))
        def copy_images(shard: dict, params=None) -> dict:
            from groundtruth import nightly

            cfg = run_config(params)
            return nightly.copy_shard_images(client(cfg, "s3"), cfg, shard)

        @task(task_id="write_inputs", execution_timeout=timedelta(minutes=30))
        def write_inputs(shard: dict, copied: dict, params=None) -> dict:
            from groundtruth import nightly

            cfg = run_config(params)
            return nightly.write_shard_inputs(client(cfg, "s3"), cfg, shard)

        @task(
            task_id="read_latest_model",
            depends_on_past=True,
            wait_for_downstream=True,
            execution_timeout=timedelta(minutes=10),
        )
        def read_latest_model(params=None, **context) -> dict:
            from groundtruth import nightly

            cfg = run_config(params)
            return nightly.latest_model(client(cfg, "s3"), client(cfg, "sagemaker"), cfg, run_day(context))

        @task(task_id="build_request", multiple_outputs=True, execution_timeout=timedelta(minutes=10))
        def build_request(shard: dict, inputs: dict, start_model: dict, params=None, run_id=None) -> dict:
            from groundtruth import nightly

            cfg = run_config(params)
            return nightly.plan_job(
                client(cfg, "s3"),
                client(cfg, "sagemaker"),
                cfg,
                dag_id,
                run_id,
                shard,
                inputs,
                start_model,
                bool(params.get("force_relabel")),
            )

        @task(task_id="check_budget", execution_timeout=timedelta(minutes=5))  # fails without retrying
        def check_budget(plan: dict, shard: dict) -> dict:
            from airflow.sdk.exceptions import AirflowFailException

            from groundtruth import nightly

            try:
                return nightly.check_budget(plan, shard, dag_id)
            except ValueError as over:
                raise AirflowFailException(str(over)) from None

        @task(task_id="publish_outputs", execution_timeout=timedelta(hours=1))
        def publish_outputs(shard: dict, plan: dict, job: dict, params=None, run_id=None) -> dict:
            from groundtruth import nightly

            cfg = run_config(params)
            return nightly.publish_outputs(client(cfg, "s3"), cfg, dag_id, run_id, shard, plan, job)

        # all_done: it must end success or skipped whatever happened upstream, because the next run's
        # read_latest_model waits for it (a failed job leaves the chain's latest model as it was).
        @task(
            task_id="publish_model",
            outlets=[latest_model],
            trigger_rule="all_done",
            execution_timeout=timedelta(minutes=10),
        )
        def publish_model(
            shard: dict | None, job: dict | None, start_model: dict, params=None, run_id=None, outlet_events=None
        ) -> dict:
            from airflow.sdk.exceptions import AirflowSkipException

            from groundtruth import nightly

            if not shard or not job or job.get("LabelingJobStatus") != "Completed":
                raise AirflowSkipException("no completed labeling job in this run: the chain's latest model stays")
            cfg = run_config(params)
            record = nightly.publish_model(client(cfg, "s3"), cfg, dag_id, run_id, shard, job)
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

        shard = select_shard()
        inputs = write_inputs(shard, copy_images(shard))
        start_model = read_latest_model()
        plan = build_request(shard, inputs, start_model)
        budget = check_budget(plan, shard)
        label = CreateLabelingJobOperator(
            task_id="label_shard",
            config=plan["request"],
            action_if_job_exists="adopt",
            aws_conn_id=config.aws_conn_id,
            region_name=config.region,
            wait_for_completion=True,
            deferrable=True,
            check_interval=config.check_interval_seconds,
            execution_timeout=LABELING_TIMEOUT,
            retry_delay=timedelta(minutes=5),
        )
        budget >> label
        publish_outputs(shard, plan, label.output)
        publish_model(shard, label.output, start_model)
    return dag


build_dags(NIGHTLY_DIR, load_nightly, build_dag, "nightly_labeling_invalid_configs", globals())
