"""Shard k of an Open Images chain starts after shard k-1's last image: the same images as selecting the first
(k + 1) slices and keeping the last, with a HEAD per image of this slice only, not per image of every slice so far."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from groundtruth.config import load_nightly
from groundtruth.experiment import select_class_images
from groundtruth.nightly import ChainLayout, EmptyShard, select_shard
from tests.nightly.conftest import MIRROR_BIRDS, SHARD_SIZE, write_test_include


@pytest.fixture
def counted(boto_session, emulator):
    """An S3 client and the keys it has HEADed."""
    client = boto_session.client("s3", endpoint_url=emulator.url)
    heads: list[str] = []
    client.meta.events.register("before-call.s3.HeadObject", lambda params, **_: heads.append(params["url_path"]))
    return client, heads


def test_each_shard_heads_its_own_slice_and_matches_the_full_selection(nightly_mirror, tmp_path, counted):
    s3, heads = counted
    config = load_nightly(write_test_include(tmp_path) / "nightly" / "birds.yaml")
    source = config.shards
    days = [config.start_date + timedelta(days=k) for k in range(MIRROR_BIRDS // SHARD_SIZE)]
    shards, heads_per_shard = [], []
    for day in days:
        heads.clear()
        shards.append(select_shard(s3, config, day))
        heads_per_shard.append(len(heads))

    heads.clear()
    _, everything, _ = select_class_images(
        s3, source.source, source.class_id, source.skip_images, source.max_image_mb, MIRROR_BIRDS, 8
    )
    full_scan_heads = len(heads)
    assert len(everything) == MIRROR_BIRDS
    layout = ChainLayout.of(config)
    for k, shard in enumerate(shards):
        body = s3.get_object(Bucket=layout.bucket, Key=layout.shard(shard["key"]).key("shard.json"))["Body"]
        record = json.loads(body.read())
        assert record["images"] == [c.image_id for c in everything[k * SHARD_SIZE : (k + 1) * SHARD_SIZE]], k
        if k:
            assert record["selected_after"] == {
                "shard": shards[k - 1]["key"],
                "image": everything[k * SHARD_SIZE - 1].image_id,
            }
        else:
            assert record["selected_after"] is None
    # Shard 0 selects from the start; every later one resumes, so none heads more than shard 0 did plus its own
    # slice's overshoot, while a full selection heads every image of every slice.
    assert all(h < full_scan_heads for h in heads_per_shard[1:]), (heads_per_shard, full_scan_heads)
    assert heads_per_shard[-1] <= full_scan_heads - (len(days) - 1) * SHARD_SIZE, heads_per_shard

    with pytest.raises(EmptyShard, match="no qualifying image follows"):
        select_shard(s3, config, days[-1] + timedelta(days=1))


@pytest.mark.parametrize("previous", ["an image the file does not hold", "not JSON"])
def test_a_shard_whose_predecessor_cannot_be_followed_selects_from_the_start(nightly_mirror, tmp_path, s3, previous):
    config = load_nightly(write_test_include(tmp_path) / "nightly" / "birds.yaml")
    source = config.shards
    first, second = config.start_date, config.start_date + timedelta(days=1)
    shard_0 = select_shard(s3, config, first)
    key = ChainLayout.of(config).shard(shard_0["key"]).key("shard.json")
    bucket = ChainLayout.of(config).bucket
    if previous == "not JSON":
        body = b"{truncated"
    else:
        record = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        record["images"][-1] = "0000000000000000"
        body = json.dumps(record).encode()
    s3.put_object(Bucket=bucket, Key=key, Body=body)

    shard_1 = select_shard(s3, config, second)
    _, everything, _ = select_class_images(
        s3, source.source, source.class_id, source.skip_images, source.max_image_mb, 2 * SHARD_SIZE, 8
    )
    layout = ChainLayout.of(config).shard(shard_1["key"])
    record = json.loads(s3.get_object(Bucket=layout.bucket, Key=layout.key("shard.json"))["Body"].read())
    assert record["selected_after"] is None
    assert record["images"] == [c.image_id for c in everything[SHARD_SIZE : 2 * SHARD_SIZE]]
