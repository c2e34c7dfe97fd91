"""Fixtures for the groundtruth plugin tests: a LabelingJobHook whose client is a botocore Stubber."""

from __future__ import annotations

import pytest
from botocore.stub import Stubber

from groundtruth.hooks import LabelingJobHook
from tests.plugins.fakes import REGION

# No Airflow connection (credentials come from the test environment) and no retries inside botocore, so every
# stubbed error reaches our own code.
HOOK_KWARGS = {"aws_conn_id": None, "region_name": REGION, "config": {"retries": {"max_attempts": 1}}}


@pytest.fixture(scope="session")
def _sagemaker_client():
    # Loading SageMaker's service model takes a few hundred milliseconds; build the client once and stub it per test.
    return LabelingJobHook(**HOOK_KWARGS).conn


@pytest.fixture
def hook(_sagemaker_client):
    hook = LabelingJobHook(**HOOK_KWARGS)
    hook.__dict__["conn"] = _sagemaker_client
    return hook


@pytest.fixture
def stub(hook):
    with Stubber(hook.conn) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()
