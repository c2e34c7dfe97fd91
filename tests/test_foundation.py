"""The repository's contract with a newcomer: exact pins, the CI entry point, the README's first commands."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_every_requirement_is_pinned_exactly():
    lines = [ln.split("#")[0].strip() for ln in (REPO / "requirements.txt").read_text().splitlines() if ln.strip()]
    reqs = [ln for ln in lines if ln]
    assert len(reqs) > 100  # a full transitive lock, not a wish list
    unpinned = [r for r in reqs if not re.fullmatch(r"[A-Za-z0-9_.\-\[\],]+==[A-Za-z0-9_.+!\-]+( ; .*)?", r)]
    assert unpinned == []


def test_lock_holds_the_chosen_packages():
    names = {ln.split("==")[0].lower() for ln in (REPO / "requirements.txt").read_text().splitlines() if "==" in ln}
    for pkg in (
        "apache-airflow",
        "apache-airflow-providers-amazon",
        "aiobotocore",
        "boto3",
        "botocore",
        "pandas",
        "pyarrow",
        "matplotlib",
        "numpy",
        "scikit-learn",
        "pyyaml",
        "pydantic",
        "moto",
        "pytest",
        "ruff",
    ):
        assert pkg in names, pkg
    text = (REPO / "requirements.txt").read_text()
    assert re.search(r"^apache-airflow==3\.3\.\d+$", text, re.M)
    assert re.search(r"^apache-airflow-providers-amazon==9\.\d+\.\d+$", text, re.M)


def test_ci_runs_exactly_make_test():
    script = (REPO / ".ci" / "run").read_text()
    commands = [ln for ln in script.splitlines() if ln.strip() and not ln.startswith("#")]
    assert commands[-1].strip() in {"make test", "exec make test"}


def test_readme_leads_with_the_two_commands():
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh|shell)?\n(.*?)```", readme, re.S)
    first = [ln.split("#")[0].strip() for ln in blocks[0].splitlines() if ln.split("#")[0].strip()]
    assert first[:2] == ["make demo", "make test"]


def test_makefile_targets_exist():
    makefile = (REPO / "Makefile").read_text()
    for target in ("demo", "test", "lint", "airflow"):
        assert re.search(rf"^{target}:", makefile, re.M), target
