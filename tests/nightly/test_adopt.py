"""CreateLabelingJobOperator(action_if_job_exists="adopt"): a second run of the same work reuses the first run's job
unless it failed; jobs of other DAGs are never adopted."""

from __future__ import annotations

import pytest

from groundtruth.operators import CreateLabelingJobOperator, TaskIdentity
from tests.plugins.conftest import _sagemaker_client, hook, stub  # noqa: F401 - the stubbed hook fixtures
from tests.plugins.fakes import DAG_ID, JOB_NAME, TASK_ID, context, job_arn
from tests.plugins.test_operators import NAME_A1, described, expected_create, make_operator, not_found

OTHER_RUN = TaskIdentity(DAG_ID, "backfill__2024-05-18T03:00:00+00:00", TASK_ID).tags()
OTHER_DAG = TaskIdentity("someone_elses_dag", "manual__1", TASK_ID).tags()


@pytest.mark.parametrize("status", ["Completed", "InProgress"])
def test_adopt_reuses_another_runs_live_job_without_creating(hook, stub, status):  # noqa: F811
    described(stub, status, tags=OTHER_RUN, unlabeled=0 if status == "Completed" else 100)
    result = make_operator(hook, action_if_job_exists="adopt", wait_for_completion=False).execute(context())
    assert result["LabelingJobName"] == JOB_NAME and result["LabelingJobStatus"] == status


@pytest.mark.parametrize("owner", [OTHER_RUN, OTHER_DAG], ids=["failed-job-of-another-run", "job-of-another-dag"])
def test_adopt_moves_on_to_a_fresh_name_past_a_failed_or_foreign_job(hook, stub, owner):  # noqa: F811
    described(stub, "Failed" if owner is OTHER_RUN else "Completed", tags=owner)
    not_found(stub, NAME_A1)
    stub.add_response("create_labeling_job", {"LabelingJobArn": job_arn(NAME_A1)}, expected_create(NAME_A1))
    described(stub, "Initializing", name=NAME_A1)
    result = make_operator(hook, action_if_job_exists="adopt", wait_for_completion=False).execute(context())
    assert result["LabelingJobName"] == NAME_A1


def test_unknown_action_is_refused():
    with pytest.raises(ValueError, match="'fail', 'increment' and 'adopt'"):
        CreateLabelingJobOperator(task_id="t", config={}, action_if_job_exists="reuse")
