"""Select + copy of N Open Images birds against the emulator with injected S3 latency: ours vs the notebook's.

Ours: streaming selection with windowed parallel HEADs, then parallel server-side copies (groundtruth.experiment).
The notebook's: one HEAD per bird box line, serially, then one managed copy per image, serially.
Printed beside ours: its latency bound, (our requests x latency) / connections, what infinitely fast client and
server would take; the CPU per request on each side; and the emulator's floor: the CPU seconds its one GIL-bound
process spent serving our requests, which no client can beat. `--storm` also runs ours under a SlowDown storm
(30% throttled, 5% 500s) against the calm run.
Usage: python bench/select_copy.py [--images 2500] [--latency-ms 20] [--storm] [--no-notebook]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "plugins"), str(REPO)]


def start_emulator() -> tuple[subprocess.Popen, str]:
    # The access log goes nowhere: writing 10,000 lines to a terminal would be measured as the emulator's time.
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulator", "serve", "--port", "0"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line = proc.stdout.readline()
    return proc, line.split("listening on ")[1].split()[0]


def set_faults(url: str, **faults) -> dict:
    body = json.dumps(faults).encode()
    request = urllib.request.Request(f"{url}/_emulator/faults", data=body, method="POST")  # noqa: S310
    with urllib.request.urlopen(request) as response:  # noqa: S310
        return json.loads(response.read())


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/<pid>/stat: utime, stime in clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ours(s3, cfg, run: str) -> tuple[float, float, int, int]:
    """(select seconds, select + copy seconds, images copied, S3 requests sent) of one run."""
    from groundtruth import experiment

    sent = []
    counter = s3.meta.events.register("before-send.s3", lambda **_: sent.append(1))
    layout = experiment.run_layout(cfg, run)
    t0 = time.perf_counter()
    experiment.select(s3, cfg, layout)
    t_select = time.perf_counter() - t0
    copied = experiment.copy(s3, cfg, layout)["copied"]
    total = time.perf_counter() - t0
    s3.meta.events.unregister("before-send.s3", counter)
    return t_select, total, copied, len(sent)


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
    parser.add_argument("--storm", action="store_true", help="also run ours under a SlowDown storm")
    parser.add_argument("--no-notebook", action="store_true", help="skip the notebook's algorithm (minutes)")
    args = parser.parse_args()

    import boto3
    from botocore.config import Config

    from emulator.sim.openimages import s3_client, seed_openimages
    from groundtruth.config import load_experiment, with_params

    latency = {"latency_ms": args.latency_ms, "only": ["s3"]}
    proc, url = start_emulator()
    try:
        seed_openimages(url, images=args.images, seed=0)
        set_faults(url, **latency)
        cfg = with_params(
            load_experiment(REPO / "include" / "experiments" / "birds.yaml"),
            {"images": args.images, "bucket": "bench-ours"},
        )
        # The client the tasks get (hooks.pooled_client): adaptive retries, a connection per worker thread.
        s3 = s3_client(url, pool=max(10, cfg.copy_workers))
        client_cpu, server_cpu = time.process_time(), cpu_seconds(proc.pid)
        t_select, t_ours, copied, sent = ours(s3, cfg, "bench")
        client_cpu, server_cpu = time.process_time() - client_cpu, cpu_seconds(proc.pid) - server_cpu
        bound = sent * args.latency_ms / 1000 / cfg.copy_workers
        print(
            f"ours: {t_ours:.1f} s for {args.images} images (select {t_select:.1f} s, {copied} copied), "
            f"{sent} requests; latency bound {sent} x {args.latency_ms:g} ms / {cfg.copy_workers} connections "
            f"= {bound:.1f} s (x{t_ours / bound:.1f} of it); CPU per request: ours {1000 * client_cpu / sent:.2f} ms, "
            f"the emulator's {1000 * server_cpu / sent:.2f} ms",
            flush=True,
        )
        if args.storm:
            storm = {**latency, "throttle_fraction": 0.3, "error_fraction": 0.05, "only": ["sagemaker", "s3"]}
            # A client that no longer retries by itself: botocore's state once a long storm has drained its quota.
            drained = boto3.client(
                "s3",
                endpoint_url=url,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",  # noqa: S106 - the emulator accepts any credentials
                region_name="us-east-1",
                config=Config(
                    max_pool_connections=max(10, cfg.copy_workers),
                    retries={"mode": "standard", "total_max_attempts": 1},
                ),
            )
            set_faults(url, **storm)
            try:
                s_select, s_ours, s_copied, s_sent = ours(drained, cfg, "storm")
                faults = set_faults(url, **latency)
            finally:
                set_faults(url, **latency)
            print(
                f"ours under the storm {json.dumps(storm)}: {s_ours:.1f} s (select {s_select:.1f} s, "
                f"{s_copied} copied), {s_sent} requests ({faults['throttled']} throttled, {faults['errored']} "
                f"answered 500); x{s_ours / t_ours:.1f} the calm run",
                flush=True,
            )
        if not args.no_notebook:
            s3.create_bucket(Bucket="bench-notebook")
            t0 = time.perf_counter()
            n = notebook(s3, "bench-notebook", "nb", args.images)
            theirs = time.perf_counter() - t0
            print(
                f"notebook serial: {theirs:.1f} s ({n} images); ours x{theirs / t_ours:.1f} faster, in the same run "
                f"(S3 latency {args.latency_ms:g} ms); the emulator's own floor: its {server_cpu:.1f} CPU-s for "
                f"our requests in one GIL-bound process, so at most x{theirs / server_cpu:.1f} here, whatever "
                "the client does"
            )
    finally:
        proc.terminate()
        proc.wait(30)


if __name__ == "__main__":
    main()
