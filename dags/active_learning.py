"""Active learning: one DAG per `include/active_learning/<name>.yaml`, named `active_learning_<name>`.

The second seed's bring-your-own-model loop (Step Functions in the original) as a pipeline; the tasks live in
`groundtruth.active_learning_tasks`, the steps in `groundtruth.active_learning_loop`.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from airflow.sdk import DAG

from groundtruth.active_learning_tasks import ActiveLearningTasks
from groundtruth.config import ActiveLearningConfig, load_active_learning
from groundtruth.dagfactory import build_dags, default_args, escaped, run_params

INCLUDE_DIR = Path(os.environ.get("GT_INCLUDE_DIR", Path(__file__).resolve().parent.parent / "include"))

DOC = """
### Active learning `{name}`

{description}

The seed's **bring-your-own-model active-learning loop** over `{input_manifest}` ({model}):

1. **prepare** — copy the input manifest into the run with sequential ids, count the labels.
2. **bootstrap** — one human labeling job brings human labels up to {bootstrap:.0%} (the first unlabeled lines);
   skipped when there are enough.
3. **round_1 … round_{max_rounds}** — train the model on the human labels (the first round fixes a {validation:.0%}
   validation set) → register it → batch-transform what is unlabeled → auto-label every line whose top-1 minus
   top-2 probability is above {margin} → humans label a seeded random {batch:.0%} of the rest → merge by id.
   A round with nothing left to label is skipped, and so are the rounds after it.
4. **export** — `final_output.manifest` under the run's output prefix, every line labeled exactly once; if
   {max_rounds} rounds did not finish, it fails saying how many lines are unlabeled (never a partial export).
   **report** — per round and in total: human vs auto shares beside the seed's 52% / 48%, cost, margins.

**stop_orphaned_jobs** (teardown) — once every job task has ended, stops any job of this run that is still running
(a task marked failed before a triggerer took up its wait leaves nobody to stop it).

Every paid job is priced against the budget (${budget}) before it starts. Retrying or clearing any task is safe:
the labeling, training and transform tasks reattach to the job an earlier try started, and a killed task stops it.
"""


def build_dag(config: ActiveLearningConfig) -> DAG:
    dag_id = f"active_learning_{config.name}"
    with DAG(
        dag_id=dag_id,
        description=config.description or f"Active-learning loop over {config.input_manifest}",
        doc_md=DOC.format(
            bootstrap=config.bootstrap_share,
            validation=config.validation_share,
            batch=config.human_batch_share,
            max_rounds=config.max_rounds,
            **escaped(
                {
                    "name": config.name,
                    "description": config.description,
                    "input_manifest": config.input_manifest,
                    "model": config.model.kind,
                    "margin": config.auto_label_margin,
                    "budget": config.budget_usd,
                }
            ),
        ),
        schedule=config.schedule,
        start_date=datetime.combine(config.start_date, datetime.min.time()) if config.start_date else None,
        catchup=config.catchup,
        max_active_runs=config.max_active_runs,
        tags=list(config.tags),
        params=run_params(config),
        default_args=default_args(config),
    ) as dag:
        loop = ActiveLearningTasks(config, dag_id, INCLUDE_DIR)
        step = loop.bootstrap(after=loop.prepare())
        for number in range(1, config.max_rounds + 1):
            step = loop.round(number, after=step)
        loop.export(after=step)
        loop.report(after=step)
        loop.stop_orphaned_jobs()  # teardown: once every job task has ended, no job of this run keeps running
    return dag


build_dags(
    INCLUDE_DIR / "active_learning", load_active_learning, build_dag, "active_learning_invalid_configs", globals()
)
