"""Whose job is this, and what should a task do with the names it finds: the retry-safety decision, pure.

Every job our operators create is tagged with its DAG, run, task, map index and try, plus
``airflow:task_instance_key`` — a hash of the exact (dag, run, task, map index), so ownership is decided exactly even
when a run id does not fit the tag-value pattern and its readable tag had to be sanitized. :func:`resolve_job` walks
the names ``<name>``, ``<name>-a1``, ... and decides reattach / adopt / create / refuse; the operator and the
nightly planner both call it, so what the planner predicts is what the operator will do.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from airflow.sdk import Context

    from groundtruth.hooks import SageMakerJobHook

DEFAULT_MAX_JOB_ATTEMPTS = 20  # names <name>, <name>-a1, ... -a19 a task may walk

TAG_DAG_ID = "airflow:dag_id"
TAG_RUN_ID = "airflow:run_id"
TAG_TASK_ID = "airflow:task_id"
TAG_MAP_INDEX = "airflow:map_index"
TAG_TRY_NUMBER = "airflow:try_number"
TAG_TASK_INSTANCE_KEY = "airflow:task_instance_key"

_TAG_VALUE_MAX = 256
_TAG_PUNCTUATION = set("_.:/=+-@ ")


def tag_value(value: object) -> str:
    """``value`` fitted to the tag-value pattern ``[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*`` and 256 characters."""
    text = "".join(ch if ch.isalnum() or ch in _TAG_PUNCTUATION else "_" for ch in str(value))
    return text[:_TAG_VALUE_MAX]


@dataclass(frozen=True)
class TaskIdentity:
    """The (dag, run, task, map index) a job belongs to; ``try_number`` is recorded but not compared."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1
    try_number: int | None = None

    @classmethod
    def from_context(cls, context: Context | Mapping[str, Any]) -> TaskIdentity:
        ti = context["ti"]
        map_index = getattr(ti, "map_index", -1)
        return cls(
            dag_id=ti.dag_id,
            run_id=ti.run_id,
            task_id=ti.task_id,
            map_index=-1 if map_index is None else int(map_index),
            try_number=getattr(ti, "try_number", None),
        )

    @property
    def key(self) -> str:
        exact = json.dumps([self.dag_id, self.run_id, self.task_id, self.map_index], separators=(",", ":"))
        return hashlib.sha256(exact.encode()).hexdigest()[:32]

    def tags(self) -> dict[str, str]:
        tags = {
            TAG_DAG_ID: tag_value(self.dag_id),
            TAG_RUN_ID: tag_value(self.run_id),
            TAG_TASK_ID: tag_value(self.task_id),
            TAG_MAP_INDEX: str(self.map_index),
            TAG_TASK_INSTANCE_KEY: self.key,
        }
        if self.try_number is not None:
            tags[TAG_TRY_NUMBER] = str(self.try_number)
        return tags

    def owns(self, tags: Mapping[str, str]) -> bool:
        return tags.get(TAG_TASK_INSTANCE_KEY) == self.key

    def __str__(self) -> str:
        mapped = f", map index {self.map_index}" if self.map_index >= 0 else ""
        return f"DAG {self.dag_id!r}, run {self.run_id!r}, task {self.task_id!r}{mapped}"


def describe_owner(tags: Mapping[str, str]) -> str:
    if TAG_TASK_INSTANCE_KEY not in tags:
        return "a job not created by this operator (it has no airflow:* tags)"
    return f"DAG {tags.get(TAG_DAG_ID)!r}, run {tags.get(TAG_RUN_ID)!r}, task {tags.get(TAG_TASK_ID)!r}"


def merge_tags(user_tags: Any, airflow_tags: Mapping[str, str]) -> Any:
    """The request's ``Tags`` plus ours; ours win on the same key. Malformed user tags are left for validation."""
    if user_tags is None:
        user_tags = []
    if not isinstance(user_tags, list) or not all(isinstance(t, Mapping) and "Key" in t for t in user_tags):
        return user_tags
    kept = [dict(t) for t in user_tags if t["Key"] not in airflow_tags]
    return kept + [{"Key": k, "Value": v} for k, v in airflow_tags.items()]


class JobNameTaken(Exception):
    """The name belongs to someone else's job and the policy says fail; the message says whose and what to do."""


class JobNamesExhausted(Exception):
    """Every candidate name is taken."""


@dataclass(frozen=True)
class Resolution:
    """`create` a job named `job_name`; `reattach` to this task's own job; `adopt` another run's job of the DAG."""

    action: Literal["create", "reattach", "adopt"]
    job_name: str
    description: dict[str, Any] | None = None
    notes: tuple[str, ...] = ()


# What a name turned out to hold: the job's description and its tags, or None when no job has the name.
Found = tuple[Mapping[str, Any], Mapping[str, str]] | None


def resolve_job(
    names: Iterable[str],
    lookup: Callable[[str], Found],
    identity: TaskIdentity,
    *,
    failed_states: frozenset[str],
    action_if_job_exists: Literal["fail", "increment", "adopt"] = "fail",
    restart_failed_job: bool = False,
    status_key: str = "LabelingJobStatus",
) -> Resolution:
    """Decide, walking `names` in order (``<name>``, ``<name>-a1``, ...; lazily looked up), what the task does.

    * This task's own job that did not fail → reattach. Its own failed job → keep walking (a later attempt may
      exist); at the first free name: create there with `restart_failed_job`, else reattach to the latest failure
      (the caller reports it; a new paid job needs an explicit opt-in).
    * Another run's job of the same DAG that did not fail, with ``action_if_job_exists="adopt"`` → adopt it.
    * Anyone else's job: ``"fail"`` → :class:`JobNameTaken`; otherwise the next name.
    Raises :class:`JobNamesExhausted` when no name is left.
    """
    latest_own_failure: Resolution | None = None
    notes: list[str] = []
    walked = 0
    for name in names:
        walked += 1
        found = lookup(name)
        if found is None:
            if latest_own_failure is not None and not restart_failed_job:
                return latest_own_failure
            return Resolution("create", name, None, tuple(notes))
        description, tags = found
        status = description.get(status_key)
        if identity.owns(tags):
            if status in failed_states:
                latest_own_failure = Resolution("reattach", name, dict(description), tuple(notes))
                if restart_failed_job:
                    notes.append(f"job {name} ended {status}; restart_failed_job=True, so the next name is used")
                continue
            return Resolution("reattach", name, dict(description), tuple(notes))
        same_dag = tags.get(TAG_DAG_ID) == tag_value(identity.dag_id)
        if action_if_job_exists == "adopt" and status not in failed_states and same_dag:
            notes.append(f"adopting job {name} ({status}), started by {describe_owner(tags)} for the same work")
            return Resolution("adopt", name, dict(description), tuple(notes))
        if action_if_job_exists == "fail":
            raise JobNameTaken(
                f"A job named {name} ({status}) already exists and belongs to {describe_owner(tags)}, "
                f"not to this task ({identity}). Use a run-scoped name "
                "(groundtruth.requests.labeling_job_name) or action_if_job_exists='increment'."
            )
        notes.append(f"job {name} belongs to {describe_owner(tags)}; trying the next name")
    if latest_own_failure is not None and not restart_failed_job:
        return latest_own_failure
    raise JobNamesExhausted(
        f"All {walked} candidate names are taken (raise max_job_attempts or choose another base name)"
    )


def stop_orphaned_jobs(
    hook: SageMakerJobHook, dag_id: str, run_id: str, log: Callable[..., Any], kinds: Iterable[str] | None = None
) -> list[str]:
    """Stop every running job of `kinds` (their Create API names, e.g. "CreateTrainingJob"; default every kind:
    labeling, training, transform) that a task of (`dag_id`, `run_id`) created, and return their names.

    Called once every job task of the run has ended (the families' `stop_orphaned_jobs` teardown). A job task waits
    for its job, so a job still running then has nobody waiting for it: its task was marked failed while deferred
    before any triggerer picked up its trigger (no `on_kill` runs then), or its worker was lost for good. Owners are
    read from the `airflow:dag_id` / `airflow:run_id` tags, so a job another run created (and this run adopted) is
    left to that run.
    """
    from groundtruth.waiting import JOB_KINDS

    dag_tag, run_tag = tag_value(dag_id), tag_value(run_id)
    stopped = []
    for kind in [JOB_KINDS[k] for k in kinds] if kinds is not None else JOB_KINDS.values():
        running = hook.retry_transient(
            lambda kind=kind: hook.running_jobs(kind), what=f"Listing running {kind.noun.lower()}s"
        )
        for summary in running:
            name = summary[kind.name_param]
            tags = hook.retry_transient(
                lambda summary=summary, kind=kind: hook.list_tags(summary[kind.arn_key]),
                what=f"Reading the tags of {kind.noun.lower()} {name}",
            )
            if tags.get(TAG_DAG_ID) != dag_tag or tags.get(TAG_RUN_ID) != run_tag:
                continue
            log(
                "%s %s of task %s is still running with no task waiting for it: stopping it",
                kind.noun,
                name,
                tags.get(TAG_TASK_ID),
            )
            if hook.retry_transient(lambda kind=kind, name=name: hook.stop_job(kind, name), what=f"Stopping {name}"):
                stopped.append(name)
    return stopped
