"""Labeling experiments: one DAG per `include/experiments/<name>.yaml`, named `labeling_experiment_<name>`.

The seed notebook's "pre-trained model" experiment as a pipeline; the tasks live in `groundtruth.experiment_tasks`.
"""

from __future__ import annotations

import os
from pathlib import Path

from airflow.sdk import DAG

from groundtruth.config import ExperimentConfig, load_experiment
from groundtruth.dagfactory import build_dags, default_args, escaped, run_params
from groundtruth.experiment_tasks import ExperimentTasks

INCLUDE_DIR = Path(os.environ.get("GT_INCLUDE_DIR", Path(__file__).resolve().parent.parent / "include"))

DOC = """
### Labeling experiment `{name}`

{description}

The seed notebook's **pre-trained model** experiment (SageMaker Ground Truth, bounding boxes), as one run:

0. A run's Params are checked first: with auto-labeling, fewer than 2,500 images would leave iteration 1 without
   the model iteration 2 needs (a job trains one only from 1,250 objects), so such a run fails before any job.
1. **select_images** — walk the Open Images hierarchy for `{class_id}` ({class_name}) and all its subclasses, stream
   the annotation CSV, skip listed and oversized (> {max_mb} MB) images, keep the first {images} in file order.
2. **copy_images** — server-side copies into this run's prefix; what is already there is not copied again.
3. **write_inputs** — the two halves' input manifests, `class_labels.json` and the instruction template.
4. **label_iteration_1** (first half, auto-labeling) → its final model → **label_iteration_2** (second half, starting
   from that model). **label_iteration_3** (second half, no model) runs alongside iteration 1.
5. **render_report** — cost, human vs machine labels per round, training curves and label quality per job, next to
   the seed's published table.

**stop_orphaned_jobs** (teardown) — once every job task has ended, stops any job of this run that is still running
(a task marked failed before a triggerer took up its wait leaves nobody to stop it).

Retrying or clearing any task is safe: every labeling task reattaches to its own job instead of starting another
(each job costs real money), and every S3 location is scoped to the run.
"""


def build_dag(config: ExperimentConfig) -> DAG:
    dag_id = f"labeling_experiment_{config.name}"
    with DAG(
        dag_id=dag_id,
        description=config.description or f"Ground Truth pre-trained model experiment on {config.class_name}",
        doc_md=DOC.format(
            **escaped(
                {
                    "name": config.name,
                    "description": config.description,
                    "class_id": config.class_id,
                    "class_name": config.class_name,
                    "images": config.images,
                    "max_mb": config.max_image_mb,
                }
            )
        ),
        schedule=config.schedule,
        catchup=False,
        max_active_runs=1,
        tags=list(config.tags),
        params=run_params(config),
        default_args=default_args(config),
    ) as dag:
        stage = ExperimentTasks(config, dag_id)
        selected, copied, inputs = stage.select_images(), stage.copy_images(), stage.write_inputs()
        selected >> copied >> inputs  # each stage reads what the previous one wrote under the run's prefix

        job_1 = stage.label(1, stage.build_request(1, inputs))
        job_2 = stage.label(2, stage.build_request(2, inputs, previous=job_1.output))
        job_3 = stage.label(3, stage.build_request(3, inputs))
        stage.render_report([job_1.output, job_2.output, job_3.output])
        stage.stop_orphaned_jobs()  # teardown: once every job task has ended, no job of this run keeps running
    return dag


build_dags(INCLUDE_DIR / "experiments", load_experiment, build_dag, "labeling_experiment_invalid_configs", globals())
