"""Nightly labeling: one DAG per `include/nightly/<name>.yaml`, named `nightly_labeling_<name>`.

Each run labels the shard of its day and chains the active-learning model from night to night; the tasks live in
`groundtruth.nightly_tasks`.
"""

from __future__ import annotations

import functools
import os
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from airflow.sdk import DAG, Asset, CronDataIntervalTimetable, Param

from groundtruth.config import NightlyConfig, OpenImagesShards, load_nightly
from groundtruth.dagfactory import build_dags, default_args, escaped, run_params
from groundtruth.nightly import notify_failure, pointer_uri
from groundtruth.nightly_tasks import NightlyTasks

INCLUDE_DIR = Path(os.environ.get("GT_INCLUDE_DIR", Path(__file__).resolve().parent.parent / "include"))

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

**stop_orphaned_jobs** (teardown) — once every job task has ended, stops any job of this run that is still running
(a task marked failed before a triggerer took up its wait leaves nobody to stop it).

Failures are logged and, with `notify_sns_topic_arn`, published to SNS. Backfill in date order:
`airflow backfill create --dag-id {dag_id} --from-date ... --to-date ... --reprocess-behavior failed`.
"""


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
    day = config.start_date
    with DAG(
        dag_id=dag_id,
        description=config.description or f"Nightly Ground Truth labeling of {config.class_name}",
        doc_md=DOC.format(
            **escaped(
                {
                    "name": config.name,
                    "description": config.description,
                    "schedule": config.schedule,
                    "timezone": config.timezone,
                    "shard_doc": _shard_doc(config),
                    "pointer": pointer_uri(config),
                    "asset": latest_model.name,
                    "dag_id": dag_id,
                }
            )
        ),
        schedule=CronDataIntervalTimetable(config.schedule, timezone=config.timezone),
        start_date=datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(config.timezone)),
        catchup=config.catchup,
        max_active_runs=config.max_active_runs,
        tags=list(config.tags),
        params=run_params(
            config,
            force_relabel=Param(
                False,
                type="boolean",
                description="Label the shard again with a fresh job though it has a completed one (costs money)",
            ),
            seed_model_arn=Param(
                config.seed_model_arn,
                type=["null", "string"],
                description="Model the chain's first run starts from (ignored once the chain has a latest model)",
            ),
            notify_sns_topic_arn=Param(
                config.notify.sns_topic_arn,
                type=["null", "string"],
                description="SNS topic that receives failure notifications (none: failures are only logged)",
            ),
        ),
        default_args=default_args(config, on_failure_callback=functools.partial(notify_failure, base=config)),
    ) as dag:
        stage = NightlyTasks(config, dag_id, latest_model)
        shard = stage.select_shard()
        copied, inputs = stage.copy_images(shard), stage.write_inputs(shard)
        copied >> inputs  # the worker template shows two of the copied images
        start_model = stage.read_latest_model()
        plan = stage.build_request(shard, inputs, start_model)
        label = stage.label_shard(plan["request"])
        stage.check_budget(plan, shard) >> label  # no job exists before its worst case fits the budget
        stage.publish_outputs(shard, plan, label.output)
        # The next run's read_latest_model waits for this run's downstream of read_latest_model (wait_for_downstream):
        # publish_model must be among them, so that the next night starts from the model published here.
        start_model >> stage.publish_model(shard, label.output)
        stage.stop_orphaned_jobs()  # teardown: once every job task has ended, no job of this run keeps running
    return dag


build_dags(INCLUDE_DIR / "nightly", load_nightly, build_dag, "nightly_labeling_invalid_configs", globals())
