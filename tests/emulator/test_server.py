"""One loopback endpoint serves the AWS services the project uses; faults reach clients as the real errors."""

from __future__ import annotations

import json
import urllib.request

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

NO_RETRY = Config(retries={"max_attempts": 1, "mode": "standard"})


def _admin(url: str, path: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + path, data=data, method="POST" if data else "GET")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


@pytest.fixture
def faults(emulator):
    yield lambda **cfg: _admin(emulator.url, "/_emulator/faults", cfg)
    _admin(emulator.url, "/_emulator/faults", {})


def test_health(emulator):
    assert _admin(emulator.url, "/_emulator/health")["status"] == "ok"


def test_s3_logs_sts_iam_share_one_port(boto_session, emulator):
    s3 = boto_session.client("s3", endpoint_url=emulator.url)
    s3.create_bucket(Bucket="server-test")
    s3.put_object(Bucket="server-test", Key="a/b.txt", Body=b"hello")
    assert s3.get_object(Bucket="server-test", Key="a/b.txt")["Body"].read() == b"hello"

    logs = boto_session.client("logs", endpoint_url=emulator.url)
    logs.create_log_group(logGroupName="/server-test")
    assert any(g["logGroupName"] == "/server-test" for g in logs.describe_log_groups()["logGroups"])

    sts = boto_session.client("sts", endpoint_url=emulator.url)
    assert sts.get_caller_identity()["Account"] == "123456789012"

    iam = boto_session.client("iam", endpoint_url=emulator.url)
    role = iam.create_role(RoleName="server-test", AssumeRolePolicyDocument="{}")["Role"]
    assert role["Arn"] == "arn:aws:iam::123456789012:role/server-test"


def test_throttling_reaches_a_json_client_as_throttling_exception(boto_session, emulator, faults):
    sm = boto_session.client("sagemaker", endpoint_url=emulator.url, config=NO_RETRY)
    faults(throttle_fraction=1.0, only=["SageMaker.ListModels"])
    with pytest.raises(ClientError) as err:
        sm.list_models()
    assert err.value.response["Error"]["Code"] == "ThrottlingException"
    # other operations are untouched by a scoped rule
    sm.list_endpoints()


def test_s3_faults_use_s3_error_codes(boto_session, emulator, faults):
    s3 = boto_session.client("s3", endpoint_url=emulator.url, config=NO_RETRY)
    faults(throttle_fraction=1.0, only=["s3"])
    with pytest.raises(ClientError) as err:
        s3.list_buckets()
    assert err.value.response["Error"]["Code"] == "SlowDown"
    faults(error_fraction=1.0, only=["s3"])
    with pytest.raises(ClientError) as err:
        s3.list_buckets()
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500


def test_retrying_client_survives_partial_throttling(boto_session, emulator, faults):
    sm = boto_session.client(
        "sagemaker", endpoint_url=emulator.url, config=Config(retries={"max_attempts": 10, "mode": "standard"})
    )
    state = faults(throttle_fraction=0.5, only=["SageMaker.ListModels"], seed=3)
    assert state["throttle_fraction"] == 0.5
    for _ in range(10):
        sm.list_models()
    assert _admin(emulator.url, "/_emulator/faults")["throttled"] > 0


def test_bad_fault_config_is_refused_with_the_field_named(emulator):
    with pytest.raises(urllib.error.HTTPError) as err:
        _admin(emulator.url, "/_emulator/faults", {"throttle_fraction": 3})
    assert "throttle_fraction" in err.value.read().decode()
