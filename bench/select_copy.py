"""Select + copy of N Open Images birds against the emulator with injected S3 latency: ours vs the notebook's.

Ours: streaming selection with windowed parallel HEADs, then parallel server-side copies (groundtruth.experiment).
The notebook's: one HEAD per bird box line, serially, then one managed copy per image, serially.
Usage: python bench/select_copy.py [--images 2500] [--latency-ms 20]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "plugins"), str(REPO)]


def start_emulator() -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulator", "serve", "--port", "0"], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    line = proc.stdout.readline()
    return proc, line.split("listening on ")[1].split()[0]


def set_latency(url: str, ms: float) -> None:
    body = json.dumps({"latency_ms": ms, "only": ["s3"]}).encode()
    urllib.request.urlopen(urllib.request.Request(f"{url}/_emulator/faults", data=body, method="POST"))  # noqa: S310


def notebook(s3, bucket: str, prefix: str, images: int) -> int:
    hierarchy = json.loads(
        s3.get_object(Bucket="open-images-dataset", Key="annotations/bbox_labels_600_hierarchy.json")["Body"].read()
    )
    from groundtruth.openimages import class_subtree

    good = class_subtree(hierarchy, "/m/015p6")
    text = s3.get_object(Bucket="open-images-dataset", Key="annotations/test-annotations-bbox.csv")["Body"].read()
    fids: dict[str, list] = {}
    for row in csv.reader(io.StringIO(text.decode())):
        if row[0] == "ImageID" or row[2] not in good:
            continue
        if s3.head_object(Bucket="open-images-dataset", Key=f"test/{row[0]}.jpg")["ContentLength"] / 1024**2 > 6:
            continue
        fids.setdefault(row[0], []).append(row[4:8])
        if len(fids) == images:
            break
    for img_id in fids:
        s3.copy({"Bucket": "open-images-dataset", "Key": f"test/{img_id}.jpg"}, bucket, f"{prefix}/images/{img_id}.jpg")
    return len(fids)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=2500)
    parser.add_argument("--latency-ms", type=float, default=20)
    args = parser.parse_args()

    from emulator.sim.openimages import s3_client, seed_openimages
    from groundtruth import experiment
    from groundtruth.config import load_experiment, with_params

    proc, url = start_emulator()
    try:
        seed_openimages(url, images=args.images, seed=0)
        set_latency(url, args.latency_ms)
        s3 = s3_client(url, pool=64)
        cfg = with_params(
            load_experiment(REPO / "include" / "experiments" / "birds.yaml"),
            {"images": args.images, "bucket": "bench-ours"},
        )
        layout = experiment.run_layout(cfg, "bench")
        t0 = time.perf_counter()
        experiment.select(s3, cfg, layout)
        t_select = time.perf_counter() - t0
        copied = experiment.copy(s3, cfg, layout)["copied"]
        ours = time.perf_counter() - t0

        s3.create_bucket(Bucket="bench-notebook")
        t0 = time.perf_counter()
        n = notebook(s3, "bench-notebook", "nb", args.images)
        theirs = time.perf_counter() - t0
    finally:
        proc.terminate()
        proc.wait(30)
    print(
        f"select+copy of {args.images} images, S3 latency {args.latency_ms:g} ms: ours {ours:.1f} s "
        f"(select {t_select:.1f} s, {copied} copied); notebook serial {theirs:.1f} s ({n} images); "
        f"speed-up x{theirs / ours:.1f}"
    )


if __name__ == "__main__":
    main()
