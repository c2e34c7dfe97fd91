"""The data stages slow down rather than fail under a SlowDown storm, and a retried try continues the last one."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from groundtruth import experiment
from groundtruth.config import SourceConfig, load_experiment, with_params
from groundtruth.openimages import AdaptiveConcurrency, S3Pacer

REPO = Path(__file__).resolve().parent.parent
MIRROR = "mirror-storm"
STORM = {"throttle_fraction": 0.3, "error_fraction": 0.05, "only": ["sagemaker", "s3"]}


def slow_down(operation: str = "HeadObject") -> ClientError:
    return ClientError(
        {"Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."}, "ResponseMetadata": {}},
        operation,
    )


# -- the adaptive limit -----------------------------------------------------------------------------------------------
def test_concurrency_limit_halves_once_per_round_of_throttles_and_grows_back_when_they_stop():
    limit = AdaptiveConcurrency(16, minimum=2)
    first_round = [limit.acquire() for _ in range(16)]
    for sent_in in first_round[:4]:  # a burst of SlowDowns for requests that were all in flight together
        limit.release(sent_in, throttled=True)
    assert limit.limit == 8 and limit.cuts == 1
    for sent_in in first_round[4:]:
        limit.release(sent_in, throttled=False)
    for _ in range(3):  # each later round that is throttled halves it again, down to the minimum
        limit.release(limit.acquire(), throttled=True)
    assert limit.limit == 2 and limit.cuts == 3

    answers = 0
    while limit.limit < 16:  # calm again: one more slot per `limit` clean answers in a row
        limit.release(limit.acquire(), throttled=False)
        answers += 1
    assert answers == sum(range(2, 16))
    assert limit.in_flight == 0


# -- the retry that outlives the client's ---------------------------------------------------------------------------
def test_pacer_retries_transient_errors_with_growing_backoff_and_names_the_object_when_it_gives_up():
    sleeps: list[float] = []
    pacer = S3Pacer(8, attempts=6, base_delay=0.1, sleep=sleeps.append)
    answers = iter([slow_down(), slow_down(), slow_down(), {"ContentLength": 7}])

    def head():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert pacer.call("HEAD s3://b/k", head) == {"ContentLength": 7}
    assert len(sleeps) == 3 and pacer.retried == 3 and pacer.limit.limit < 8
    assert 0.05 <= sleeps[0] <= 0.1 and 0.2 <= sleeps[2] <= 0.4  # equal jitter: half fixed, half random

    def always_throttled():
        raise slow_down()

    with pytest.raises(ClientError) as failure:
        pacer.call("HEAD s3://b/missing-forever", always_throttled)
    assert any("HEAD s3://b/missing-forever: still failing after 6 tries" in n for n in failure.value.__notes__)


def test_pacer_raises_errors_that_are_not_transient_at_once():
    sleeps: list[float] = []
    pacer = S3Pacer(4, sleep=sleeps.append)
    denied = ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "CopyObject")

    def copy():
        raise denied

    with pytest.raises(ClientError, match="AccessDenied"):
        pacer.call("copy", copy)
    assert sleeps == [] and pacer.limit.limit == 4


def test_a_success_the_client_had_to_retry_counts_as_throttled():
    pacer = S3Pacer(8, sleep=lambda _: None)
    pacer.call("HEAD", lambda: {"ResponseMetadata": {"RetryAttempts": 2}})
    assert pacer.limit.limit == 4


# -- against the emulator ------------------------------------------------------------------------------------------
def set_faults(url: str, faults: dict) -> dict:
    request = urllib.request.Request(f"{url}/_emulator/faults", data=json.dumps(faults).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def storm_mirror(emulator):
    from emulator.sim.openimages import seed_openimages

    return seed_openimages(emulator.url, images=150, seed=4, bucket=MIRROR)


@pytest.fixture
def config(storm_mirror):
    base = with_params(
        load_experiment(REPO / "include" / "experiments" / "birds.yaml"),
        {"images": 120, "auto_labeling": False, "bucket": "storm-runs"},
    )
    return base.model_copy(update={"source": SourceConfig(bucket=MIRROR), "create_bucket": True, "copy_workers": 8})


def outcome(s3, layout) -> tuple[dict, set[str]]:
    """What a select + copy left behind: the selection file and the copied keys (relative to the run)."""
    selection = experiment.load_selection(s3, layout)
    listed = s3.list_objects_v2(Bucket=layout.bucket, Prefix=layout.key("images") + "/", MaxKeys=1000)
    return selection, {o["Key"][len(layout.root) :] for o in listed.get("Contents", [])}


def test_select_and_copy_complete_under_a_slowdown_storm_with_the_calm_result(emulator, boto_session, config):
    calm_s3 = boto_session.client("s3", endpoint_url=emulator.url)
    calm = experiment.run_layout(config, "calm")
    experiment.select(calm_s3, config, calm)
    experiment.copy(calm_s3, config, calm)

    # A client that never retries by itself: what botocore does once a long storm has drained its retry quota.
    stormy_s3 = boto_session.client(
        "s3", endpoint_url=emulator.url, config=Config(retries={"mode": "standard", "total_max_attempts": 1})
    )
    stormy = experiment.run_layout(config, "storm")
    set_faults(emulator.url, STORM)
    try:
        selected = experiment.select(stormy_s3, config, stormy)
        copied = experiment.copy(stormy_s3, config, stormy)
        storm = set_faults(emulator.url, {})
    finally:
        set_faults(emulator.url, {})
    assert storm["throttled"] > 30 and storm["errored"] > 3  # the storm really happened, to these requests
    assert selected["images"] == 120 and copied["copied"] == 120
    assert outcome(calm_s3, stormy) == outcome(calm_s3, calm)


def test_a_retried_selection_continues_after_what_the_failed_try_judged(emulator, boto_session, config):
    s3 = boto_session.client("s3", endpoint_url=emulator.url)
    full = experiment.run_layout(config, "whole")
    experiment.select(s3, config, full)

    # The 91st chosen image is at least the 91st candidate: in the second window of 64 (8 rounds of 8 workers), so
    # the first window is judged and recorded whatever order the HEADs of the two windows run in.
    fatal = f"{experiment.load_selection(s3, full)['images'][90]}.jpg"

    def lose_the_worker_in_the_second_window(params, **_):
        if params["url_path"].endswith(fatal):
            raise RuntimeError("worker lost")  # not transient: the try ends here, as a killed task would

    dying = boto_session.client("s3", endpoint_url=emulator.url)
    dying.meta.events.register("before-call.s3.HeadObject", lose_the_worker_in_the_second_window)
    layout = experiment.run_layout(config, "interrupted")
    with pytest.raises(RuntimeError, match="worker lost"):
        experiment.select(dying, config, layout)
    progress = json.loads(s3.get_object(Bucket=layout.bucket, Key=layout.key("selection.progress.json"))["Body"].read())
    assert 0 < len(progress["images"]) < 120

    retried: list[str] = []
    s3.meta.events.register("before-call.s3.HeadObject", lambda params, **_: retried.append(params["url_path"]))
    experiment.select(s3, config, layout)
    assert experiment.load_selection(s3, layout) == experiment.load_selection(s3, full)
    judged_before = {f"/{config.source.bucket}/{config.source.image_prefix}{i}.jpg" for i in progress["images"]}
    assert not judged_before & set(retried)  # nothing the failed try had chosen is headed again
