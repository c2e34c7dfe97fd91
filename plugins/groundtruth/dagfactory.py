"""One DAG per config file, for the DAG factories in `dags/`: a bad file becomes that DAG file's import error
(naming the file and the field) while every valid config beside it still becomes a DAG."""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

from airflow.sdk import DAG

from groundtruth.config import ConfigError


class InvalidConfigs(DAG):
    """Carries config errors to the DagBag: it refuses validation, which records them as the DAG file's import
    error, while the valid DAGs defined beside it are still bagged."""

    def validate(self):
        raise ConfigError(self.description)


def build_dags(
    directory: Path,
    load: Callable[[Path], Any],
    build: Callable[[Any], DAG],
    invalid_dag_id: str,
    namespace: MutableMapping[str, Any],
) -> None:
    """Build a DAG from every `*.yaml` in `directory` into `namespace` (the DAG file's globals)."""
    errors = []
    for path in sorted(directory.glob("*.yaml")):
        try:
            dag = build(load(path))
        except ConfigError as exc:
            errors.append(str(exc))
            continue
        namespace[dag.dag_id] = dag
    if errors:
        namespace[f"_{invalid_dag_id}"] = InvalidConfigs(
            dag_id=invalid_dag_id, description=" | ".join(errors), schedule=None
        )
