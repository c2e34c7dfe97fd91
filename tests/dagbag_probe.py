"""Parse the DAG folder in a fresh interpreter with another include directory, as a dag-processor would see it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

PROBE = textwrap.dedent(
    """
    import json, sys
    from airflow.dag_processing.dagbag import DagBag
    bag = DagBag(dag_folder=sys.argv[1])
    print(json.dumps({"dags": sorted(bag.dag_ids), "errors": {k: str(v) for k, v in bag.import_errors.items()}}))
    """
)


def parse_dags(dags: Path, include: Path) -> dict:
    """{"dags": [...], "errors": {file: message}} of `dags` with GT_INCLUDE_DIR=`include`."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(dags)],
        env={**os.environ, "GT_INCLUDE_DIR": str(include)},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])
