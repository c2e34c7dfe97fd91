"""Selection over a train-split-sized annotation CSV (14.6 M rows, ~1.2 GB) with bounded memory.

Generates the CSV once (cached under $TMPDIR), then streams it through `iter_candidates` + `select_images` in a
child process and prints the child's peak RSS beside the file size. Usage: python bench/selection_memory.py [rows]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
HEADER = (
    "ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,IsDepiction,IsInside\n"
)
LABELS = ["/m/015p6", "/m/09b5t", "/m/0k4j", "/m/01g317", "/m/07j7r", "/m/0cmf2", "/m/01yrx", "/m/0bt9lr"]


def generate(path: Path, rows: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    with path.open("w") as out:
        out.write(HEADER)
        written, image = 0, 0
        while written < rows:
            n = min(1_000_000, rows - written)
            per_image = rng.integers(1, 12, size=n // 4 + 1)
            ids = np.repeat(np.arange(image, image + len(per_image)), per_image)[:n]
            image += len(per_image)
            labels = np.array(LABELS)[rng.integers(0, len(LABELS), size=n)]
            x0, y0 = rng.random(n) * 0.5, rng.random(n) * 0.5
            lines = [
                f"{i:016x},xclick,{lab},1,{a:.6f},{a + 0.3:.6f},{b:.6f},{b + 0.3:.6f},0,0,0,0,0\n"
                for i, lab, a, b in zip(ids, labels, x0, y0, strict=True)
            ]
            out.writelines(lines)
            written += n


CHILD = """
import resource, sys, time
sys.path[:0] = [sys.argv[2] + "/plugins"]
from groundtruth.openimages import iter_candidates, select_images
t0 = time.perf_counter()
with open(sys.argv[1], "rb") as f:
    chosen, skipped = select_images(
        iter_candidates(f, set(sys.argv[4].split(","))), lambda ids: dict.fromkeys(ids, 1000), int(sys.argv[3]), 6 << 20
    )
print(len(chosen), time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 14_600_000
    path = Path(tempfile.gettempdir()) / f"gt-bench-annotations-{rows}.csv"
    if not path.exists():
        t0 = time.perf_counter()
        generate(path, rows)
        print(f"generated {rows:,} rows in {time.perf_counter() - t0:.0f} s")
    size_mb = path.stat().st_size / 1e6
    baseline = subprocess.run(
        [sys.executable, "-c", "import resource, pandas; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"],
        capture_output=True,
        text=True,
        check=True,
    )
    base_mb = int(baseline.stdout) / 1024
    # The usual case stops early; a class that is nowhere in the file makes the run stream all of it (the worst
    # case for time, and for memory if anything were retained).
    cases = [("birds, 2,500 images", "/m/015p6,/m/09b5t"), ("absent class, full scan", "/m/absent")]
    for label, classes in cases:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(path), str(REPO), "2500", classes],
            capture_output=True,
            text=True,
            check=True,
        )
        chosen, seconds, rss_kb = out.stdout.split()
        peak = int(rss_kb) / 1024
        print(
            f"{label}: {int(chosen):,} images in {float(seconds):.1f} s; file {size_mb:,.0f} MB, "
            f"peak RSS {peak:.0f} MB (interpreter + pandas alone {base_mb:.0f} MB), "
            f"peak/file = {peak / size_mb:.3f}"
        )


if __name__ == "__main__":
    main()
