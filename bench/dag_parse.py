"""Time a full parse of dags/ (what the dag-processor does per file loop). Prints seconds per parse."""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="gt-bench-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
sys.path[:0] = [str(REPO / "plugins"), str(REPO)]


def main() -> None:
    from airflow.dag_processing.dagbag import DagBag

    times, dags = [], 0
    for _ in range(5):
        t0 = time.perf_counter()
        bag = DagBag(dag_folder=str(REPO / "dags"))
        times.append(time.perf_counter() - t0)
        dags = len(bag.dag_ids)
        assert not bag.import_errors, bag.import_errors
    print(f"dags/ parse: {dags} DAGs, median {statistics.median(times) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
