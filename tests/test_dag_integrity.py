"""Every DAG file imports cleanly, every DAG is complete, and parsing touches no AWS service."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DAGS = REPO / "dags"


def expected_dag_ids() -> set[str]:
    ids = {f"labeling_experiment_{p.stem}" for p in (REPO / "include" / "experiments").glob("*.yaml")}
    ids |= {f"nightly_labeling_{p.stem}" for p in (REPO / "include" / "nightly").glob("*.yaml")}
    ids |= {f"active_learning_{p.stem}" for p in (REPO / "include" / "active_learning").glob("*.yaml")}
    return ids


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}


def test_one_dag_per_config_file(dagbag):
    assert set(dagbag.dag_ids) == expected_dag_ids()


def test_every_dag_is_complete(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.doc_md and dag.doc_md.strip(), f"{dag_id}: doc_md missing"
        assert dag.tags, f"{dag_id}: tags missing"
        for task in dag.tasks:
            assert task.owner and task.owner != "airflow", f"{dag_id}.{task.task_id}: owner missing"
            assert task.retries >= 1, f"{dag_id}.{task.task_id}: no retries"
        assert_acyclic(dag)


def test_every_run_ends_with_a_sweep_after_all_its_job_tasks(dagbag):
    """A teardown downstream of every task that starts a paid job, and of nothing else (docs/ARCHITECTURE.md, "No
    job outlives its run's tasks")."""
    from groundtruth.operators import RetrySafeJobMixin

    for dag_id, dag in dagbag.dags.items():
        if "invalid_configs" in dag_id:
            continue
        sweep = dag.get_task("stop_orphaned_jobs")
        job_tasks = {t.task_id for t in dag.tasks if isinstance(t, RetrySafeJobMixin)}
        assert sweep.is_teardown and job_tasks, dag_id
        assert sweep.upstream_task_ids == job_tasks and not sweep.downstream_task_ids, dag_id
    experiment = dagbag.dags["labeling_experiment_birds"].get_task("stop_orphaned_jobs")
    loop = dagbag.dags["active_learning_news"].get_task("stop_orphaned_jobs")
    # the kinds each sweep lists are the kinds its DAG starts (IAM: a labeling-only family lists labeling jobs only)
    assert list(experiment.op_args) == [["CreateLabelingJob"]]
    assert list(loop.op_args) == [["CreateLabelingJob", "CreateTrainingJob", "CreateTransformJob"]]


def assert_acyclic(dag) -> None:
    """Kahn's algorithm over the task graph: every task must come out, or there is a cycle."""
    indegree = {t.task_id: len(t.upstream_task_ids) for t in dag.tasks}
    ready = [tid for tid, n in indegree.items() if n == 0]
    seen = 0
    while ready:
        tid = ready.pop()
        seen += 1
        for down in dag.get_task(tid).downstream_task_ids:
            indegree[down] -= 1
            if indegree[down] == 0:
                ready.append(down)
    assert seen == len(indegree), f"{dag.dag_id}: cycle among its tasks"


PROBE = textwrap.dedent(
    """
    import json, sys, time
    import boto3, botocore.session, botocore.client

    calls = []

    def refuse(*args, **kwargs):
        calls.append(repr(args[:2]))
        raise RuntimeError("AWS used at parse time")

    botocore.session.Session.create_client = refuse
    botocore.client.BaseClient._make_api_call = refuse
    boto3.client = refuse
    boto3.resource = refuse

    from airflow.dag_processing.dagbag import DagBag

    t0 = time.perf_counter()
    bag = DagBag(dag_folder=sys.argv[1])
    elapsed = time.perf_counter() - t0
    print(json.dumps({"calls": calls, "errors": {k: str(v) for k, v in bag.import_errors.items()},
                      "dags": sorted(bag.dag_ids), "seconds": elapsed}))
    """
)


def test_parsing_makes_no_aws_call():
    env = dict(os.environ)
    # An endpoint nothing listens on: any call would fail loudly even if the patched boto3 were bypassed.
    env["AIRFLOW_CONN_AWS_DEFAULT"] = "aws://x:y@/?region_name=us-east-1&endpoint_url=http%3A%2F%2F127.0.0.1%3A9"
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(DAGS)], env=env, capture_output=True, text=True, timeout=300, check=True
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["calls"] == []
    assert result["errors"] == {}
    assert set(result["dags"]) == expected_dag_ids()


def test_form_params_copy_cheaply_and_serialize_as_airflows_own(dagbag):
    """`groundtruth.dagfactory.FormParam` (cheap deep copies for Airflow's per-task copies of a DAG's Params) writes
    and reads back exactly what Airflow's own Param does, and a copy is independent of its original."""
    import copy

    from airflow.sdk import Param
    from airflow.sdk.definitions.param import ParamsDict
    from airflow.serialization.serialized_objects import DagSerialization

    from groundtruth.dagfactory import FormParam

    for dag_id in ("labeling_experiment_birds", "nightly_labeling_birds", "active_learning_news"):
        dag = dagbag.dags[dag_id]
        params = {k: dag.params.get_param(k) for k in dag.params}
        assert all(type(p) is FormParam for p in params.values()), dag_id
        serialized = DagSerialization.to_dict(dag)["dag"]["params"]
        plain = [
            (k, DagSerialization._serialize_param(Param(p.value, p.description, p.source, schema=p.schema)))
            for k, p in params.items()
        ]
        assert [tuple(x) for x in serialized] == plain, dag_id
        back = DagSerialization.from_dict(DagSerialization.to_dict(dag))
        assert back.params.dump() == dag.params.dump(), dag_id
        # every task's copy of the DAG's Params serializes as the DAG's do
        assert all(t.params.dump() == dag.params.dump() for t in dag.tasks), dag_id

    original = FormParam(["a", "b"], "a list", type="array", minItems=1)
    twin = copy.deepcopy(ParamsDict({"p": original})).get_param("p")
    twin.value.append("c")
    twin.schema["minItems"] = 5
    assert original.value == ["a", "b"] and original.schema == {"type": "array", "minItems": 1}
    assert twin.description == "a list" and f"{type(twin).__module__}.{type(twin).__name__}" == (
        "airflow.sdk.definitions.param.Param"
    )
