"""Nightly Open Images shards: what selecting shard k costs when it resumes after shard k-1, against selecting the
first k + 1 slices from the start (what every night did before), with injected S3 latency.

Usage: python bench/nightly_selection.py [--images 2500] [--shard-size 250] [--latency-ms 20]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "plugins"), str(REPO)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2500)
    parser.add_argument("--shard-size", type=int, default=250)
    parser.add_argument("--latency-ms", type=float, default=20)
    args = parser.parse_args()
    if args.shard_size < 1 or args.images < args.shard_size:
        parser.error("--shard-size must be at least 1 and at most --images")

    from bench.select_copy import set_latency, start_emulator
    from emulator.sim.openimages import s3_client, seed_openimages
    from groundtruth.config import load_nightly
    from groundtruth.experiment import select_class_images
    from groundtruth.nightly import select_shard

    base = load_nightly(REPO / "include" / "nightly" / "birds.yaml")
    config = base.model_copy(
        update={
            "bucket": "bench-nightly",
            "shards": base.shards.model_copy(update={"images_per_shard": args.shard_size}),
        }
    )
    proc, url = start_emulator()
    try:
        seed_openimages(url, images=args.images, seed=0)
        set_latency(url, args.latency_ms)
        s3 = s3_client(url, pool=64)
        heads: list[int] = []
        s3.meta.events.register("before-call.s3.HeadObject", lambda **_: heads.append(1))
        shards = args.images // args.shard_size
        print(f"{shards} shards of {args.shard_size} birds, S3 latency {args.latency_ms:g} ms")
        for k in range(shards):
            heads.clear()
            started = time.perf_counter()
            select_shard(s3, config, config.start_date + timedelta(days=k))
            resumed = time.perf_counter() - started, len(heads)
            heads.clear()
            started = time.perf_counter()
            source = config.shards
            select_class_images(
                s3,
                source.source,
                source.class_id,
                source.skip_images,
                source.max_image_mb,
                (k + 1) * args.shard_size,
                config.copy_workers,
            )
            full = time.perf_counter() - started, len(heads)
            print(
                f"shard {k}: select_shard {resumed[0]:.2f} s, {resumed[1]} HEADs; the first {k + 1} slices from the "
                f"start {full[0]:.2f} s, {full[1]} HEADs (x{full[0] / resumed[0]:.1f} time)",
                flush=True,
            )
    finally:
        proc.terminate()
        proc.wait(30)


if __name__ == "__main__":
    main()
