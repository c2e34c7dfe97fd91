"""Time parsing the dags/ folder with N experiment and N nightly configs, as the dag-processor does, after the first
import. Prints seconds per parse and the ratio to the target (0.5 s).

The configs are copies of `include/experiments/birds.yaml` and `include/nightly/birds.yaml` with distinct names,
written to a temporary include dir the DAG files read through `GT_INCLUDE_DIR`. When `dags/active_learning.py` and an
`include/active_learning/*.yaml` exist, that family gets N configs too, copies of each of its configs in turn
(`--active-learning 0`: none, so the folder holds just the N + N; the bench runs without that family).

Measured, after a first parse that imports Airflow, the provider and `groundtruth`:
- `DagBag(dags/)`: the whole folder in one bag, median and max of `--parses` parses (the target's figure), and each
  file's share by the bag's own clock;
- per file, what a dag-processor child does: `BundleDagBag(<file>)` + `DagSerialization.to_dict` of every DAG.
Usage: python bench/dag_parse.py [--configs 20] [--active-learning N] [--parses 5] [--target 0.5]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OWN_HOME = None if "AIRFLOW_HOME" in os.environ else tempfile.mkdtemp(prefix="gt-bench-")  # removed at the end
if OWN_HOME:
    os.environ["AIRFLOW_HOME"] = OWN_HOME
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")  # no "Filling up the DagBag" line per parse
sys.path[:0] = [str(REPO / "plugins"), str(REPO)]

# family -> (its DAG file, its config dir under include/, the config copied, the DAG id prefix)
FAMILIES = {
    "experiments": ("labeling_experiments.py", "experiments", "birds.yaml", "labeling_experiment_"),
    "nightly": ("nightly_labeling.py", "nightly", "birds.yaml", "nightly_labeling_"),
    "active_learning": ("active_learning.py", "active_learning", None, "active_learning_"),  # used if present
}


def write_include_dir(root: Path, copies: dict[str, int]) -> dict[str, int]:
    """A copy of include/ whose config dirs hold `copies[family]` configs per family present (0: none);
    {family: configs written}."""
    shutil.copytree(REPO / "include", root, dirs_exist_ok=True)
    written = {}
    for family, (dag_file, subdir, template_name, _) in FAMILIES.items():
        source = REPO / "include" / subdir
        templates = sorted(source.glob("*.yaml")) if source.is_dir() else []
        if template_name:
            templates = [source / template_name]
        if not (REPO / "dags" / dag_file).exists() or not templates or not templates[0].exists():
            continue
        target = root / subdir
        for old in target.glob("*.yaml"):
            old.unlink()
        for i in range(1, copies[family] + 1):
            template = templates[(i - 1) % len(templates)]  # a family without a named template: each config in turn
            name = f"{template.stem}_{i:02d}"[:41]
            body, _ = re.subn(r"(?m)^name:.*$", f"name: {name}", template.read_text(), count=1)
            (target / f"{name}.yaml").write_text(body)  # no `name:` field: the stem names it
        written[family] = copies[family]
    return written


def _seconds(duration) -> float:
    return duration.total_seconds() if hasattr(duration, "total_seconds") else float(duration)


def timed_dagbag(folder: Path):
    from airflow.dag_processing.dagbag import DagBag

    t0 = time.perf_counter()
    bag = DagBag(dag_folder=str(folder))
    return time.perf_counter() - t0, bag


def processor_parse(dag_file: Path) -> tuple[float, float, int]:
    """(parse s, serialize s, DAGs) of one file, as `airflow.dag_processing.processor._parse_file` does it."""
    from airflow.dag_processing.dagbag import BundleDagBag
    from airflow.serialization.serialized_objects import DagSerialization

    t0 = time.perf_counter()
    bag = BundleDagBag(dag_folder=str(dag_file), bundle_path=dag_file.parent, load_op_links=False)
    t1 = time.perf_counter()
    assert not bag.import_errors, bag.import_errors
    for dag in bag.dags.values():
        DagSerialization.to_dict(dag)
    return t1 - t0, time.perf_counter() - t1, len(bag.dags)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", type=int, default=20, help="configs per family (default 20)")
    parser.add_argument(
        "--active-learning",
        type=int,
        default=None,
        help="active-learning configs, if that family exists (default: --configs)",
    )
    parser.add_argument("--parses", type=int, default=5, help="timed parses after the first (default 5)")
    parser.add_argument("--target", type=float, default=0.5, help="seconds per parse of dags/ (default 0.5)")
    args = parser.parse_args()

    include = Path(tempfile.mkdtemp(prefix="gt-bench-include-"))
    try:
        copies = {family: args.configs for family in FAMILIES}
        if args.active_learning is not None:
            copies["active_learning"] = args.active_learning
        written = write_include_dir(include, copies)
        os.environ["GT_INCLUDE_DIR"] = str(include)  # read by every DAG file when the bag executes it
        dags_dir = REPO / "dags"
        files = sorted(p for p in dags_dir.glob("*.py") if not p.name.startswith("_"))
        print(f"configs per family: {written} in {include}")
        print(f"DAG files: {', '.join(p.name for p in files)}")

        first, bag = timed_dagbag(dags_dir)
        assert not bag.import_errors, bag.import_errors
        expected = {family: sum(1 for d in bag.dag_ids if d.startswith(FAMILIES[family][3])) for family in written}
        print(
            f"first parse (imports Airflow, the provider, groundtruth): {first * 1000:.0f} ms, {len(bag.dag_ids)} DAGs"
        )
        for family, count in expected.items():
            assert count == written[family], f"{family}: {count} DAGs for {written[family]} configs"

        times, per_file = [], {}
        for _ in range(args.parses):
            seconds, bag = timed_dagbag(dags_dir)
            assert not bag.import_errors, bag.import_errors
            times.append(seconds)
            for stat in bag.dagbag_stats:  # the bag's own clock per file
                per_file.setdefault(Path(stat.file).name, []).append((stat.duration, stat.dag_num, stat.task_num))
        median = statistics.median(times)
        print(
            f"DagBag(dags/): {len(bag.dag_ids)} DAGs, median {median * 1000:.0f} ms, min {min(times) * 1000:.0f} ms, "
            f"max {max(times) * 1000:.0f} ms over {args.parses} parses "
            f"({median / len(bag.dag_ids) * 1000:.1f} ms a DAG); target {args.target:.2f} s: "
            f"x{median / args.target:.2f} of it"
        )
        for name, stats in sorted(per_file.items()):
            seconds = statistics.median(_seconds(d) for d, _, _ in stats)
            print(f"  in that bag, {name}: {stats[0][1]} DAGs, {stats[0][2]} tasks, median {seconds * 1000:.0f} ms")

        total_parse = total_serialize = 0.0
        for dag_file in files:
            runs = [processor_parse(dag_file) for _ in range(max(1, min(3, args.parses)))]
            parse = statistics.median(r[0] for r in runs)
            serialize = statistics.median(r[1] for r in runs)
            total_parse += parse
            total_serialize += serialize
            print(
                f"  dag-processor, {dag_file.name}: {runs[0][2]} DAGs, parse {parse * 1000:.0f} ms + "
                f"serialize {serialize * 1000:.0f} ms"
            )
        print(
            f"dag-processor work for all files: parse {total_parse * 1000:.0f} ms + serialize "
            f"{total_serialize * 1000:.0f} ms = {(total_parse + total_serialize) * 1000:.0f} ms"
        )
    finally:
        shutil.rmtree(include, ignore_errors=True)
        if OWN_HOME:
            shutil.rmtree(OWN_HOME, ignore_errors=True)


if __name__ == "__main__":
    main()
