"""`make demo`: the default experiment end to end on the local AWS stand-in.

Starts the emulator on a free loopback port, seeds the synthetic Open Images mirror, runs
`labeling_experiment_birds` with `airflow dags test` (SQLite metadata DB under .airflow/), prints the per-job
summary table and the report path, and stops the emulator whatever happens.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parent.parent
DAG_ID = "labeling_experiment_birds"
BIN = Path(sys.executable).parent
TIME_SCALE = os.environ.get("GT_DEMO_TIME_SCALE", "600")
IMAGES = os.environ.get("GT_DEMO_IMAGES", "2500")


def fail(message: str) -> int:
    print(f"make demo: {message}", file=sys.stderr)
    return 2


def airflow_env(endpoint_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AIRFLOW_CONN_"))}
    home = Path(os.environ.get("GT_AIRFLOW_HOME") or REPO / ".airflow")
    env.update(
        {
            # `airflow standalone` starts its services as `airflow ...` subprocesses: the venv's bin/ must be on
            # PATH even when nobody activated the venv (make does not).
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW_CONN_AWS_DEFAULT": (
                f"aws://demo:demo@/?region_name=us-east-1&endpoint_url={quote(endpoint_url, safe='')}"
            ),
            "AWS_EC2_METADATA_DISABLED": "true",
            "GT_LOCAL_REPORTS_DIR": str(REPO / "reports"),
            "PYTHONPATH": f"{REPO / 'plugins'}:{REPO}",
            "MPLBACKEND": "Agg",
        }
    )
    return env


def start_emulator(time_scale: str = TIME_SCALE, stderr=None) -> tuple[subprocess.Popen, str]:
    """The emulator on a free loopback port (its log to `stderr`, e.g. a file); returns it and its URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulator", "serve", "--port", "0", "--time-scale", time_scale],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    line = proc.stdout.readline() if proc.stdout else ""
    if "listening on " not in line:
        proc.kill()
        raise RuntimeError(f"emulator did not start (printed {line!r})")
    return proc, line.split("listening on ")[1].split()[0]


def stop_emulator(emulator: subprocess.Popen) -> None:
    emulator.terminate()
    try:
        emulator.wait(timeout=20)
    except subprocess.TimeoutExpired:
        emulator.kill()


def main() -> int:
    emulator, url = start_emulator()
    print(f"emulator: {url} (pid {emulator.pid}, time scale x{TIME_SCALE})")
    try:
        return run_demo(url)
    except subprocess.CalledProcessError as exc:
        return fail(f"`{' '.join(map(str, exc.cmd[:4]))} ...` failed with exit {exc.returncode}; see its output above")
    finally:
        stop_emulator(emulator)


def run_demo(url: str) -> int:
    env = airflow_env(url)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "emulator",
            "seed-openimages",
            "--endpoint-url",
            url,
            "--images",
            IMAGES,
            "--seed",
            "0",
        ],
        cwd=REPO,
        check=True,
        env=env,
    )
    (REPO / ".airflow").mkdir(exist_ok=True)
    subprocess.run([str(BIN / "airflow"), "db", "migrate"], cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL)
    run = subprocess.run([str(BIN / "airflow"), "dags", "test", DAG_ID], cwd=REPO, env=env)
    if run.returncode != 0:
        return fail(f"`airflow dags test {DAG_ID}` failed (exit {run.returncode}); see the task logs above")
    reports = sorted((REPO / "reports" / DAG_ID).glob("*/report.json"), key=lambda p: p.stat().st_mtime)
    if not reports:
        return fail(f"the run succeeded but wrote no report under reports/{DAG_ID}/")
    from groundtruth.report import summary_text

    report = json.loads(reports[-1].read_text())
    print(f"\n{DAG_ID} run {report['run_id']}\n")
    print(summary_text(report))
    pretrained = {j["key"]: j["pretrained_model_arn"] for j in report["jobs"]}
    print(f"\niteration-2 started from: {pretrained.get('iteration-2')}")
    print(f"iteration-3 started from: {pretrained.get('iteration-3')}")
    machine = {j["key"]: j["machine_labeled_pct"] for j in report["jobs"]}
    if machine.get("iteration-2") is not None and machine.get("iteration-3") is not None:
        gain = machine["iteration-2"] - machine["iteration-3"]
        print(
            f"pretrained model: iteration-2 machine-labeled {machine['iteration-2']:.1f}% vs iteration-3 "
            f"{machine['iteration-3']:.1f}% ({gain:+.1f} points; the seed's real run: 79% vs 60%, +19)"
        )
    print(f"report: {reports[-1].with_name('report.html')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
