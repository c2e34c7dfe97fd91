"""`make airflow`: Airflow standalone (UI on localhost:8080) against a running emulator.

Start the emulator first (`make emulator`, or any `python -m emulator serve --port N`) and pass its URL as
EMULATOR_URL (default http://127.0.0.1:4566). Login is printed by `airflow standalone` on start. The UI port is
AIRFLOW__API__PORT (default 8080); the Airflow home GT_AIRFLOW_HOME (default .airflow/, shared with `make demo`).
"""

from __future__ import annotations

import os
import sys
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo import airflow_env


def main() -> int:
    url = os.environ.get("EMULATOR_URL", "http://127.0.0.1:4566")
    try:
        urllib.request.urlopen(f"{url}/_emulator/health", timeout=5)  # noqa: S310 - loopback
    except OSError as exc:
        print(f"make airflow: no emulator answers at {url} ({exc}); start one with `make emulator`", file=sys.stderr)
        return 2
    env = airflow_env(url)
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    port = env.get("AIRFLOW__API__PORT", "8080")
    print(f"Airflow UI: http://localhost:{port}  (aws_default -> {url}); the login is printed below", flush=True)
    os.execve(str(Path(sys.executable).parent / "airflow"), ["airflow", "standalone"], env)  # noqa: S606


if __name__ == "__main__":
    sys.exit(main())
