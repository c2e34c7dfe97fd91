"""Nightly labeling as plain functions: the `nightly_labeling_<name>` DAG's tasks are thin shells around these.

One chain per config file, living under `s3://<bucket>/<prefix>/<name>/`:

    shards/<shard key>/shard.json          what the shard holds (fixed the first time it is selected)
    shards/<shard key>/images/              the shard's images (Open Images source; incoming images stay in place)
    shards/<shard key>/input.manifest, class_labels.json, instructions.template
    shards/<shard key>/jobs/<job name>/     the labeling job's own outputs
    shards/<shard key>/output.manifest      the labeled output manifest, at a stable place
    shards/<shard key>/summary.json         what the last run of the shard did
    models/latest.json                      the chain's latest final model (the pointer)

Each run labels the shard of its day (the run's logical date, i.e. the start of its data interval). Job names derive
from (DAG, chain, shard) only, never from the run, so a second run of a shard finds the first one's job and reuses it;
`force_relabel` gives a run-scoped name instead. The pointer only moves forward in shard order.

Everything heavy is imported inside the functions: the DAG file imports this module at parse time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from groundtruth.config import NightlyConfig, OpenImagesShards
from groundtruth.stages import (
    JobInputs,
    S3Layout,
    bounding_box_request,
    ensure_bucket,
    put_json,
    read_json,
    select_class_images,
    write_worker_ui,
)

log = logging.getLogger(__name__)

POINTER_VERSION = 1
LABEL_TASK_ID = "label_shard"  # the DAG's labeling task: the planner predicts what that task will do


class BudgetExceeded(ValueError):
    """A new job's worst case does not fit the budget: deterministic, so the task fails without retrying."""


class EmptyShard(Exception):  # a domain outcome, not an error: the DAG turns it into a skip
    """The run's shard holds no image: nothing to label tonight."""


# -- pure: which shard, where it lives, what its job is called --------------------------------------------------------
def shard_day(logical_date: datetime | None, data_interval_start: datetime | None, timezone: str) -> date:
    """The day a run labels: its logical date (the start of its data interval for scheduled and backfill runs), in
    the chain's time zone. Manual runs without a logical date fall back to their data interval."""
    from zoneinfo import ZoneInfo

    moment = logical_date or data_interval_start
    if moment is None:
        raise ValueError("the run has neither a logical date nor a data interval: it has no shard")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(ZoneInfo(timezone)).date()


def render_day(template: str, day: date) -> str:
    """`{{ ds }}` / `{{ ds_nodash }}` replaced; nothing else in a config string is ever templated."""
    return template.replace("{{ ds }}", day.isoformat()).replace("{{ ds_nodash }}", day.strftime("%Y%m%d"))


def _short_hash(value: Any, length: int = 6) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:length]


@dataclass(frozen=True)
class Shard:
    """One night's share of the data. `key` names it in S3 and in job names; `order` sorts shards in time."""

    key: str
    kind: str
    day: str  # ISO date
    index: int | None  # Open Images: k, the slice number; None for date partitions
    label: str  # the readable part job names carry (at most 8 characters)
    spec: dict

    @property
    def order(self) -> str:
        return self.day


def shard_for(config: NightlyConfig, day: date) -> Shard:
    """The shard of `day`. Its key hashes what decides the shard's content, so changing the class, the slice size
    or the source starts new shards instead of reusing jobs made for other images."""
    source = config.shards
    if isinstance(source, OpenImagesShards):
        index = (day - config.start_date).days
        spec = {
            "kind": source.kind,
            "source": source.source.model_dump(),
            "class_id": source.class_id,
            "images_per_shard": source.images_per_shard,
            "max_image_mb": source.max_image_mb,
            "skip_images": sorted(source.skip_images),
        }
        key = f"k{index:05d}-{_short_hash(spec)}" if index >= 0 else f"before-start-{day.isoformat()}"
        return Shard(key, source.kind, day.isoformat(), index, f"k{index}"[:8], spec)
    spec = {
        "kind": source.kind,
        "uri": source.uri,
        "suffixes": sorted(s.lower() for s in source.suffixes),
        "max_image_mb": source.max_image_mb,
        "max_objects": source.max_objects,
    }
    return Shard(
        f"dt-{day.isoformat()}-{_short_hash(spec)}", source.kind, day.isoformat(), None, day.strftime("%Y%m%d"), spec
    )


def shard_slice(index: int, size: int) -> tuple[int, int]:
    """Positions [start, stop) of slice `index` in the class's stable image order."""
    if index < 0 or size < 1:
        raise ValueError(f"shard index must be >= 0 and size >= 1, got {index} and {size}")
    return index * size, (index + 1) * size


@dataclass(frozen=True)
class ChainLayout:
    """Where a chain keeps everything: s3://<bucket>/<prefix>/<name>/."""

    bucket: str
    root: str

    @classmethod
    def of(cls, config: NightlyConfig) -> ChainLayout:
        return cls(config.bucket, f"{config.prefix}/{config.name}")

    @property
    def chain_uri(self) -> str:
        return f"s3://{self.bucket}/{self.root}"

    @property
    def pointer_key(self) -> str:
        return f"{self.root}/models/latest.json"

    @property
    def pointer_uri(self) -> str:
        return f"s3://{self.bucket}/{self.pointer_key}"

    def shard(self, shard_key: str) -> S3Layout:
        return S3Layout(self.bucket, f"{self.root}/shards/{shard_key}")


def pointer_uri(config: NightlyConfig) -> str:
    return ChainLayout.of(config).pointer_uri


def shard_job_name(dag_id: str, chain_uri: str, shard: Shard, relabel_run_id: str | None = None) -> str:
    """Deterministic per shard: every run of the shard gets the same name (so it finds the job already made);
    `relabel_run_id` (force_relabel) gives the name of that run's own fresh job, still the same on its retries."""
    from groundtruth.requests import labeling_job_name

    identity = json.dumps([chain_uri, shard.key] + ([relabel_run_id] if relabel_run_id else []))
    return labeling_job_name(dag_id, identity, "relabel" if relabel_run_id else "label", shard.label)


# -- pure: the model pointer ----------------------------------------------------------------------------------------
def pointer_record(
    job: dict, shard: Shard, dag_id: str, run_id: str, previous: dict | None, now: datetime | None = None
) -> dict[str, Any]:
    return {
        "version": POINTER_VERSION,
        "model_arn": job["FinalActiveLearningModelArn"],
        "job_name": job["LabelingJobName"],
        "job_arn": job["LabelingJobArn"],
        "shard": {"key": shard.key, "day": shard.day, "index": shard.index, "order": shard.order},
        "dag_id": dag_id,
        "run_id": run_id,
        "published_at": (now or datetime.now(UTC)).isoformat(),
        "previous_model_arn": (previous or {}).get("model_arn"),
    }


def publish_decision(current: dict | None, shard: Shard, model_arn: str | None) -> tuple[bool, str]:
    """Whether this shard's final model becomes the chain's latest, and why (not).

    The pointer moves forward only: a late rerun of an older shard never replaces a newer shard's model, and
    publishing the same model again (a rerun that reused its job) emits nothing new.
    """
    if not model_arn:
        return False, "the job reported no final model (auto-labeling off, or fewer objects than it needs)"
    if current is None:
        return True, "the chain has no model yet"
    if current.get("model_arn") == model_arn:
        return False, f"{model_arn} is already the chain's latest model"
    current_order = (current.get("shard") or {}).get("order") or ""
    if current_order > shard.order:
        return False, f"the chain's latest model comes from a later shard ({current_order}); it stays"
    return True, f"replaces {current.get('model_arn')} (shard {current_order})"


# -- I/O: select, stage, write inputs -------------------------------------------------------------------------------
def _shard_result(shard: Shard, record: dict, layout) -> dict:
    return {
        **asdict(shard),
        "objects": len(record["refs"]),
        "shard_uri": layout.uri("shard.json"),
        "reused_selection": record.get("reused", False),
    }


def select_shard(s3, config: NightlyConfig, day: date) -> dict:
    """Select the shard of `day` and write `shard.json`; reuse that file when it exists (a shard's content is fixed
    by its first selection). Raises EmptyShard when there is nothing to label."""
    shard = shard_for(config, day)
    layout = ChainLayout.of(config).shard(shard.key)
    ensure_bucket(s3, config)
    existing = read_json(s3, layout.bucket, layout.key("shard.json"))
    if existing is not None:
        log.info("shard %s: reusing %s (%d images)", shard.key, layout.uri("shard.json"), len(existing["refs"]))
        return _shard_result(shard, {**existing, "reused": True}, layout)
    if isinstance(config.shards, OpenImagesShards):
        record = _select_openimages(s3, config, config.shards, shard, layout)
    else:
        record = _select_prefix(s3, config, shard, day)
    put_json(s3, layout.bucket, layout.key("shard.json"), record)
    log.info("shard %s: %d images", shard.key, len(record["refs"]))
    return _shard_result(shard, record, layout)


def _previous_shard_end(s3, config: NightlyConfig, shard: Shard) -> dict | None:
    """{"shard", "image"}: the last image of the previous shard when that shard is selected and full, else None.

    Shard k is the k-th slice of the class's qualifying images, so it starts right after shard k-1's last image:
    selecting from there heads 1 x `images_per_shard` images instead of (k + 1) x, night after night.
    """
    if not shard.index:
        return None
    previous = shard_for(config, date.fromisoformat(shard.day) - timedelta(days=1))
    layout = ChainLayout.of(config).shard(previous.key)
    try:
        record = read_json(s3, layout.bucket, layout.key("shard.json"))
    except ValueError as exc:  # not JSON: that shard's own rerun names it; this one selects from the start
        log.warning("shard %s: %s is not JSON (%s); selecting from the start", shard.key, layout.uri("shard.json"), exc)
        return None
    images = record.get("images") if isinstance(record, dict) else None
    if not (isinstance(images, list) and len(images) == config.shards.images_per_shard and isinstance(images[-1], str)):
        return None  # not selected yet, short (the class ended there) or not ours: select from the start
    return {"shard": previous.key, "image": images[-1]}


def _select_openimages(s3, config: NightlyConfig, source: OpenImagesShards, shard: Shard, layout) -> dict:
    if shard.index is None or shard.index < 0:
        raise EmptyShard(f"{shard.day} is before the chain's start_date {config.start_date}: no shard")
    start, stop = shard_slice(shard.index, source.images_per_shard)
    args = (s3, source.source, source.class_id, source.skip_images, source.max_image_mb)
    after = _previous_shard_end(s3, config, shard)
    images = None
    if after is not None:
        try:
            _, images, skipped = select_class_images(
                *args, source.images_per_shard, config.copy_workers, after["image"]
            )
        except LookupError as exc:  # the annotation file changed under the chain: fall back to the definition
            log.warning("shard %s: %s (the last of shard %s); selecting from the start", shard.key, exc, after["shard"])
            after = None
        else:
            log.info(
                "shard %s: selecting after image %s, the last of shard %s", shard.key, after["image"], after["shard"]
            )
    if images is None:
        _, chosen, skipped = select_class_images(*args, stop, config.copy_workers)
        images = chosen[start:stop]
        if not images:
            raise EmptyShard(
                f"shard {shard.index} of class {source.class_id} ({shard.day}) is empty: the class has {len(chosen)} "
                f"qualifying images, this shard would start at image {start}"
            )
    elif not images:
        raise EmptyShard(
            f"shard {shard.index} of class {source.class_id} ({shard.day}) is empty: no qualifying image follows "
            f"{after['image']}, the last of shard {after['shard']} (image {start - 1})"
        )
    return {
        "shard": asdict(shard),
        "images": [c.image_id for c in images],
        "boxes": {c.image_id: c.boxes for c in images},
        "refs": [layout.uri("images", f"{c.image_id}.jpg") for c in images],
        "sources": [f"{source.source.image_prefix}{c.image_id}.jpg" for c in images],
        "skipped": skipped,
        "selected_after": after,
    }


def _select_prefix(s3, config: NightlyConfig, shard: Shard, day: date) -> dict:
    from groundtruth.openimages import existing_keys

    source = config.shards
    uri = render_day(source.uri, day)
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    suffixes = tuple(s.lower() for s in source.suffixes)
    limit = int(source.max_image_mb * 1024 * 1024)
    found = existing_keys(s3, bucket, prefix)
    wanted = sorted(k for k in found if k.lower().endswith(suffixes))
    kept = [k for k in wanted if found[k] <= limit]
    if not kept:
        raise EmptyShard(f"no images under {uri} ({len(found)} objects, {len(wanted) - len(kept)} too large)")
    if len(kept) > source.max_objects:
        raise ValueError(
            f"{uri} holds {len(kept)} images, more than shards.max_objects={source.max_objects}; "
            "raise it or split the day's data"
        )
    return {
        "shard": asdict(shard),
        "prefix_uri": uri,
        "refs": [f"s3://{bucket}/{k}" for k in kept],
        "skipped": {"too_large": len(wanted) - len(kept), "not_an_image": len(found) - len(wanted)},
    }


def _load_shard(s3, config: NightlyConfig, shard: dict) -> tuple[dict, S3Layout]:
    layout = ChainLayout.of(config).shard(shard["key"])
    record = read_json(s3, layout.bucket, layout.key("shard.json"))
    if record is None:
        raise FileNotFoundError(f"{layout.uri('shard.json')} is gone; clear select_shard to select the shard again")
    return record, layout


def copy_shard_images(s3, config: NightlyConfig, shard: dict) -> dict:
    """Server-side copies of the Open Images shard into its prefix, skipping what is there (incoming images are
    labeled where they landed)."""
    from groundtruth.openimages import copy_objects, existing_keys

    record, layout = _load_shard(s3, config, shard)
    if not isinstance(config.shards, OpenImagesShards):
        return {"copied": 0, "skipped_existing": 0, "images_prefix": record["prefix_uri"]}
    src = config.shards.source
    pairs = [
        (src.bucket, source_key, layout.bucket, ref[len(f"s3://{layout.bucket}/") :])
        for source_key, ref in zip(record["sources"], record["refs"], strict=True)
    ]
    present = existing_keys(s3, layout.bucket, layout.key("images") + "/")
    result = copy_objects(s3, pairs, workers=config.copy_workers, log=log.info, existing=present)
    return {**asdict(result), "images_prefix": layout.uri("images") + "/"}


def write_shard_inputs(s3, config: NightlyConfig, shard: dict) -> dict:
    """The input manifest, `class_labels.json` and the worker template (with two boxed examples when the source
    has reference boxes)."""
    from groundtruth.manifests import input_manifest

    record, layout = _load_shard(s3, config, shard)
    s3.put_object(Bucket=layout.bucket, Key=layout.key("input.manifest"), Body=input_manifest(record["refs"]))
    examples = []
    for image_id in [record["images"][i] for i in (1, 3) if i < len(record.get("images", []))]:
        jpeg = s3.get_object(Bucket=layout.bucket, Key=layout.key("images", f"{image_id}.jpg"))["Body"].read()
        examples.append((jpeg, [tuple(b) for b in record["boxes"][image_id]]))
    ui = write_worker_ui(s3, layout, config.class_name, examples)
    return {
        "manifest_uri": layout.uri("input.manifest"),
        **ui,
        "output_uri": layout.uri("jobs") + "/",
        "objects": len(record["refs"]),
    }


# -- I/O: the model chain -----------------------------------------------------------------------------------------
def read_pointer(s3, config: NightlyConfig) -> dict | None:
    chain = ChainLayout.of(config)
    return read_json(s3, chain.bucket, chain.pointer_key)


def latest_model(s3, sagemaker, config: NightlyConfig, day: date) -> dict:
    """The model this run starts from: the chain's latest, else the configured seed model, else none.

    A pointer naming a model that no longer exists fails the run here, before any job is built on it.
    """
    from botocore.exceptions import ClientError

    pointer = read_pointer(s3, config)
    if pointer is not None:
        arn, source = pointer.get("model_arn"), "chain"
        if (pointer.get("shard") or {}).get("order", "") > day.isoformat():
            log.warning("running out of order: %s starts from the model of a later shard (%s)", day, pointer["shard"])
    elif config.seed_model_arn:
        arn, source = config.seed_model_arn, "seed"
    else:
        arn, source = None, "none"
    if arn:
        try:
            sagemaker.describe_model(ModelName=arn.rsplit("/", 1)[-1])
        except ClientError as exc:
            raise ValueError(
                f"the {source} model {arn} (from {pointer_uri(config) if source == 'chain' else 'seed_model_arn'}) "
                f"cannot be described: {exc}. Point {pointer_uri(config)} at an existing model, or delete it to "
                "start from seed_model_arn"
            ) from exc
    log.info("starting from %s (%s)", arn or "no model", source)
    return {"model_arn": arn, "source": source, "pointer": pointer, "pointer_uri": pointer_uri(config)}


# -- I/O: the job's plan ------------------------------------------------------------------------------------------
def plan_job(
    s3,
    hook,
    config: NightlyConfig,
    dag_id: str,
    run_id: str,
    shard: dict,
    inputs: dict,
    start_model: dict,
    force_relabel: bool,
) -> dict:
    """The labeling job of this run: its request (deterministic name, the chain's model), whether the labeling task
    will reuse a job (then nothing new is paid for: `resolve_job` decides, exactly as the operator will), and the
    worst-case cost of a new one. `hook`: a LabelingJobHook."""
    from groundtruth.descriptions import json_safe
    from groundtruth.ownership import DEFAULT_MAX_JOB_ATTEMPTS, TaskIdentity, resolve_job
    from groundtruth.pricing import worst_case_cost
    from groundtruth.requests import with_attempt_suffix
    from groundtruth.waiting import LABELING_JOB

    identity = TaskIdentity(dag_id, run_id, LABEL_TASK_ID)

    def resolve(base: str):
        return resolve_job(
            (with_attempt_suffix(base, k) for k in range(DEFAULT_MAX_JOB_ATTEMPTS)),
            hook.find_job_with_tags,
            identity,
            failed_states=LABELING_JOB.rule.failure_states,
            action_if_job_exists="adopt",
        )

    chain = ChainLayout.of(config)
    this = Shard(**{k: shard[k] for k in ("key", "kind", "day", "index", "label", "spec")})
    name = shard_job_name(dag_id, chain.chain_uri, this)
    if force_relabel:
        name = shard_job_name(dag_id, chain.chain_uri, this, relabel_run_id=run_id)
    else:
        # The shard's current job may be an earlier forced relabel: its summary names it.
        summary = read_json(s3, chain.bucket, chain.shard(this.key).key("summary.json")) or {}
        recorded = (summary.get("job") or {}).get("name")
        if recorded and resolve(recorded).action != "create":
            name = recorded
    resolution = resolve(name)
    existing = resolution.description if resolution.action != "create" else None
    request = bounding_box_request(
        config,
        JobInputs(inputs["manifest_uri"], inputs["labels_uri"], inputs["template_uri"], inputs["output_uri"]),
        name,
        start_model.get("model_arn"),
        {"nightly": config.name, "shard": this.key},
    )
    estimate = worst_case_cost(inputs["objects"], request, config.service_fee_usd)
    reuse = None
    if existing is not None:
        reuse = json_safe(
            {k: existing.get(k) for k in ("LabelingJobName", "LabelingJobArn", "LabelingJobStatus", "CreationTime")}
        )
        log.info("shard %s: job %s exists (%s), reusing it", this.key, name, existing.get("LabelingJobStatus"))
    return {
        "request": request,
        "job_name": name,
        "forced": bool(force_relabel),
        "reuse": reuse,
        "initial_model_arn": (request.get("LabelingJobAlgorithmsConfig") or {}).get("InitialActiveLearningModelArn"),
        "estimate": estimate,
        "budget_usd": config.budget_usd,
    }


def check_budget(plan: dict, shard: dict, dag_id: str) -> dict:
    """Raises BudgetExceeded with the message when a new job's worst case exceeds the budget; reusing costs
    nothing."""
    from groundtruth.pricing import budget_problem

    estimate = plan["estimate"]
    if plan["reuse"]:
        return {**estimate, "new_job": False, "budget_usd": plan["budget_usd"]}
    problem = budget_problem(estimate, plan["budget_usd"], f"{dag_id}, shard {shard['key']}")
    if problem:
        raise BudgetExceeded(f"{problem} Raise budget_usd (a run Param, or the config) or make the shards smaller.")
    return {**estimate, "new_job": True, "budget_usd": plan["budget_usd"]}


# -- I/O: outputs and the model -------------------------------------------------------------------------------------
def publish_outputs(s3, config: NightlyConfig, dag_id: str, run_id: str, shard: dict, plan: dict, job: dict) -> dict:
    """The job's output manifest copied to `shards/<key>/output.manifest`, and `summary.json` beside it."""
    from groundtruth.descriptions import summarize_labeling_job
    from groundtruth.pricing import labeling_cost, pricing_from_request

    layout = ChainLayout.of(config).shard(shard["key"])
    job = summarize_labeling_job(job)
    source = job.get("OutputDatasetS3Uri")
    if not source:
        raise ValueError(f"labeling job {job.get('LabelingJobName')} reported no OutputDatasetS3Uri")
    src_bucket, _, src_key = source[len("s3://") :].partition("/")
    s3.copy_object(
        Bucket=layout.bucket, Key=layout.key("output.manifest"), CopySource={"Bucket": src_bucket, "Key": src_key}
    )
    pricing = pricing_from_request(plan["request"], config.service_fee_usd)
    summary = {
        "dag_id": dag_id,
        "run_id": run_id,
        "nightly": config.name,
        "shard": {k: shard[k] for k in ("key", "kind", "day", "index", "objects", "shard_uri")},
        "job": {
            "name": job["LabelingJobName"],
            "arn": job["LabelingJobArn"],
            "status": job["LabelingJobStatus"],
            "reused": bool(plan.get("reuse")),
            "forced": bool(plan.get("forced")),
            "created": job.get("CreationTime"),
            "finished": job.get("LastModifiedTime"),
        },
        "initial_model_arn": plan.get("initial_model_arn"),
        "final_model_arn": job.get("FinalActiveLearningModelArn"),
        "label_counters": job["LabelCounters"],
        "cost_usd": labeling_cost(job["human_labeled"], job["machine_labeled"], pricing),
        "worst_case_usd": plan["estimate"]["worst_case_usd"],
        "budget_usd": plan["budget_usd"],
        "output_manifest": layout.uri("output.manifest"),
        "job_output_manifest": source,
        "written_at": datetime.now(UTC).isoformat(),
    }
    put_json(s3, layout.bucket, layout.key("summary.json"), summary)
    log.info("shard %s: %s and %s", shard["key"], summary["output_manifest"], layout.uri("summary.json"))
    return {**summary, "summary_uri": layout.uri("summary.json")}


def publish_model(s3, config: NightlyConfig, dag_id: str, run_id: str, shard: dict, job: dict) -> dict | None:
    """Make this shard's final model the chain's latest (see `publish_decision`); None when it does not."""
    this = Shard(**{k: shard[k] for k in ("key", "kind", "day", "index", "label", "spec")})
    current = read_pointer(s3, config)
    model_arn = job.get("FinalActiveLearningModelArn") or job.get("final_model_arn")
    publish, why = publish_decision(current, this, model_arn)
    if not publish:
        log.info("model pointer unchanged: %s", why)
        return None
    record = pointer_record(job, this, dag_id, run_id, current)
    chain = ChainLayout.of(config)
    put_json(s3, chain.bucket, chain.pointer_key, record)
    log.info("model pointer %s now names %s: %s", chain.pointer_uri, model_arn, why)
    return {**record, "pointer_uri": chain.pointer_uri}


# -- failure notification -------------------------------------------------------------------------------------------
_SECRET_PATTERNS = (
    re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"),
    re.compile(r"(?i)(aws_secret_access_key|aws_session_token|secret|password|token)(\s*[=:]\s*)\S+"),
    re.compile(r"(?i)(://[^:/@\s]+:)[^@\s]+@"),
)


def redact(text: str) -> str:
    """Airflow's secrets masker (connection passwords and other registered secrets), then access-key ids, obvious
    `secret=...` pairs and URL passwords: a notification leaves the deployment, credentials must not."""
    try:
        from airflow.sdk._shared.secrets_masker import redact as airflow_redact

        text = str(airflow_redact(text))
    except ImportError:  # pragma: no cover - older SDK layout
        pass
    text = _SECRET_PATTERNS[0].sub("***", text)
    text = _SECRET_PATTERNS[1].sub(r"\1\2***", text)
    return _SECRET_PATTERNS[2].sub(r"\1***@", text)


def failure_notice(context: dict) -> tuple[str, str]:
    """(subject, message) of a failed task: DAG, run, task, try, the run's day and the error, redacted."""
    ti = context.get("ti") or context.get("task_instance")
    dag_id = getattr(ti, "dag_id", "?")
    task_id = getattr(ti, "task_id", "?")
    error = context.get("exception")
    error_text = f"{type(error).__name__}: {error}" if error is not None else "(no exception recorded)"
    logical = context.get("logical_date")
    lines = [
        f"Nightly labeling task failed: {dag_id}.{task_id}",
        f"run: {getattr(ti, 'run_id', '?')}",
        f"logical date: {logical.isoformat() if logical else 'none'}",
        f"try: {getattr(ti, 'try_number', '?')}",
        f"error: {error_text}",
    ]
    log_url = getattr(ti, "log_url", None)
    if log_url:
        lines.append(f"log: {log_url}")
    subject = re.sub(r"[^\x20-\x7e]", " ", f"[Airflow] {dag_id}.{task_id} failed")[:100]
    return redact(subject), redact("\n".join(lines))


def notify_failure(context: dict, *, base: NightlyConfig) -> None:
    """`on_failure_callback`: always log the failure; publish it to SNS (the provider's SnsNotifier) when the run's
    `notify_sns_topic_arn` Param or the config's `notify.sns_topic_arn` names a topic."""
    from groundtruth.config import ConfigError, with_params

    try:
        config = with_params(base, dict(context.get("params") or {}))
    except ConfigError:
        config = base
    subject, message = failure_notice(context)
    log.error("%s\n%s", subject, message)
    topic = config.notify.sns_topic_arn
    if not topic:
        return
    from airflow.providers.amazon.aws.notifications.sns import SnsNotifier
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        # notify() rather than calling the notifier: the redacted text is sent as is, never rendered as a template.
        SnsNotifier(
            aws_conn_id=config.aws_conn_id,
            region_name=config.region,
            target_arn=topic,
            message=message,
            subject=subject,
        ).notify(context)
    except (BotoCoreError, ClientError) as exc:
        log.error("could not publish the failure to SNS topic %s: %s", topic, redact(str(exc)))
    else:
        log.info("failure published to SNS topic %s", topic)
