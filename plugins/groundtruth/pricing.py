"""What labeling costs: the API's price shape, per-object prices read from a request, job cost, worst case.

One home for money, used by the request builder (a price becomes `PublicWorkforceTaskPrice`), the report (what a
job cost) and the budget guardrails (what a job may cost at most). Amounts are Decimal inside and rounded to a
hundredth of a cent on the way out, so sums over thousands of objects carry no float noise.

Price basis: every labeled object pays the service fee; a human-labeled object also pays
`NumberOfHumanWorkersPerDataObject` x the public task price — only on the public workforce (a private team is paid
outside AWS, a vendor through AWS Marketplace).

Instances: training and batch-transform jobs pay instance-seconds x the instance type's on-demand price per hour,
read from `sagemaker_prices.json` next to this module (its `source`, `retrieved` date, `region`, and per figure
whether it was confirmed against the source).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

SERVICE_FEE_USD = 0.08
"""Ground Truth's per-object fee when the seed ran (2019); pass the current one to `pricing_from_request`."""

_TENTH_OF_A_CENT = Decimal("0.001")
_MAX_PRICE = Decimal("2.999")  # Dollars ≤ 2, Cents ≤ 99, TenthFractionsOfACent ≤ 9


def usd_price(amount: float | int | str | Decimal) -> dict[str, dict[str, int]]:
    """
    Convert a USD amount such as ``0.036`` to ``PublicWorkforceTaskPrice`` exactly.

    Floats are read through their shortest decimal representation (``0.036`` → ``Decimal("0.036")``), so the binary
    rounding of ``0.036`` never turns into 35 tenths of a cent. Amounts that are not a whole number of tenths of a
    cent, non-positive, or above $2.999 (what the three fields can hold) are rejected rather than rounded: rounding a
    price silently changes what the job costs.
    """
    if isinstance(amount, bool):
        raise ValueError(f"Price must be a number of US dollars, got {amount!r}.")
    try:
        value = Decimal(str(amount)) if isinstance(amount, float) else Decimal(amount)
    except (InvalidOperation, TypeError, ValueError):
        raise ValueError(f"Price must be a number of US dollars, got {amount!r}.") from None
    if not value.is_finite() or value <= 0 or value > _MAX_PRICE:
        raise ValueError(
            f"Price {amount!r} USD is outside what PublicWorkforceTaskPrice can express (0 < price ≤ 2.999)."
        )
    if value != value.quantize(_TENTH_OF_A_CENT):
        raise ValueError(f"Price {amount!r} USD is not a whole number of tenths of a cent (e.g. 0.036, 0.012, 1.2).")
    tenths = int(value / _TENTH_OF_A_CENT)
    return {
        "AmountInUsd": {
            "Dollars": tenths // 1000,
            "Cents": (tenths % 1000) // 10,
            "TenthFractionsOfACent": tenths % 10,
        }
    }


def price_to_usd(price: Mapping[str, Any] | None) -> Decimal:
    """Inverse of :func:`usd_price`: ``{"AmountInUsd": {...}}`` (or the bare ``AmountInUsd``) → Decimal dollars;
    no price → 0."""
    amount = (price or {}).get("AmountInUsd", price) or {}
    return (
        Decimal(int(amount.get("Dollars", 0)))
        + Decimal(int(amount.get("Cents", 0))) / 100
        + Decimal(int(amount.get("TenthFractionsOfACent", 0))) / 1000
    )


def rounded_usd(amount: Decimal | float) -> float:
    """Dollars rounded to a hundredth of a cent."""
    return float(round(Decimal(str(amount)), 4))


def workforce_kind(workteam_arn: str | None) -> str:
    """public | private | vendor | unknown, from the work team ARN (`...:workteam/public-crowd/default`, ...)."""
    team = (workteam_arn or "").partition(":workteam/")[2]
    for kind in ("public", "private", "vendor"):
        if team.startswith(f"{kind}-crowd/"):
            return kind
    return "unknown"


@dataclass(frozen=True)
class Pricing:
    """What one labeled object costs, as read from a CreateLabelingJob request."""

    service_fee_usd: float
    task_price_usd: float
    workers_per_object: int
    workforce: str  # public | private | vendor | unknown

    @property
    def human_object_usd(self) -> float:
        return rounded_usd(
            Decimal(str(self.service_fee_usd)) + self.workers_per_object * Decimal(str(self.task_price_usd))
        )

    @property
    def machine_object_usd(self) -> float:
        return self.service_fee_usd


def pricing_from_request(request: Mapping[str, Any], service_fee_usd: float = SERVICE_FEE_USD) -> Pricing:
    """Per-object prices from a CreateLabelingJob request (a DescribeLabelingJob response echoes it and works too).

    With no recognisable work team ARN, the price is taken when the request states one.
    """
    htc = request.get("HumanTaskConfig") or {}
    kind = workforce_kind(htc.get("WorkteamArn"))
    stated = float(price_to_usd(htc.get("PublicWorkforceTaskPrice")))
    return Pricing(
        service_fee_usd=float(service_fee_usd),
        task_price_usd=stated if kind in ("public", "unknown") else 0.0,
        workers_per_object=int(htc.get("NumberOfHumanWorkersPerDataObject", 1)),
        workforce=kind,
    )


def labeling_cost(human_labeled: int, machine_labeled: int, pricing: Pricing) -> dict[str, float]:
    """`{"human", "machine", "total"}` in USD: human-labeled objects at fee + workers x price, machine ones at fee."""
    human = Decimal(human_labeled) * Decimal(str(pricing.human_object_usd))
    machine = Decimal(machine_labeled) * Decimal(str(pricing.machine_object_usd))
    return {"human": rounded_usd(human), "machine": rounded_usd(machine), "total": rounded_usd(human + machine)}


def worst_case_cost(objects: int, request: Mapping[str, Any], service_fee_usd: float) -> dict[str, Any]:
    """Every object labeled by humans: objects x (service fee + workers x task price), priced from the request."""
    pricing = pricing_from_request(request, service_fee_usd)
    per_object = Decimal(str(pricing.human_object_usd))
    return {
        "objects": objects,
        "service_fee_usd": pricing.service_fee_usd,
        "workers_per_object": pricing.workers_per_object,
        "task_price_usd": pricing.task_price_usd,
        "per_object_usd": float(per_object),
        "worst_case_usd": float(round(per_object * objects, 4)),
    }


def budget_problem(estimate: Mapping[str, Any], budget_usd: float, what: str) -> str | None:
    """The message that stops a run when the worst case exceeds the budget; None when it fits. `what` names the
    work being priced (DAG, shard, ...)."""
    if Decimal(str(estimate["worst_case_usd"])) <= Decimal(str(budget_usd)):
        return None
    return (
        f"{what}: the worst-case cost ${estimate['worst_case_usd']:,.2f} "
        f"({estimate['objects']} objects x (${estimate['service_fee_usd']:.3f} service fee + "
        f"{estimate['workers_per_object']} workers x ${estimate['task_price_usd']:.3f})) exceeds the budget "
        f"${budget_usd:,.2f}. No labeling job was created."
    )


# --------------------------------------------------------------------------------------------------------------------
# Instances: training and batch-transform jobs.
# --------------------------------------------------------------------------------------------------------------------
PRICE_TABLE = Path(__file__).with_name("sagemaker_prices.json")
InstanceUse = Literal["training", "transform"]
_USES: tuple[str, ...] = ("training", "transform")
_SECONDS_PER_HOUR = Decimal(3600)


@functools.cache
def instance_price_table() -> dict[str, Any]:
    """The on-demand price table (`sagemaker_prices.json`): `source`, `retrieved`, `region`, and per use
    (`training`, `transform`) each instance type's `usd_per_hour`, `confirmed` and `evidence`."""
    return json.loads(PRICE_TABLE.read_text(encoding="utf-8"))


def _price_entry(instance_type: str, region: str, use: str) -> Mapping[str, Any]:
    if use not in _USES:
        raise ValueError(f"instance use must be one of {', '.join(_USES)}, got {use!r}")
    table = instance_price_table()
    if region != table["region"]:
        raise ValueError(
            f"no on-demand {use} price for {instance_type} in region {region!r}: {PRICE_TABLE.name} holds "
            f"{table['region']} only (source {table['source']})"
        )
    entry = table[use].get(instance_type)
    if entry is None:
        raise ValueError(
            f"no on-demand {use} price for instance type {instance_type!r} in region {region!r}; "
            f"{PRICE_TABLE.name} lists: {', '.join(sorted(table[use]))}"
        )
    return entry


def instance_price_per_hour(instance_type: str, region: str, use: InstanceUse = "training") -> Decimal:
    """The on-demand USD price of one `instance_type` instance for an hour of `use` in `region`; ValueError naming
    the type and region when the table has no figure for them."""
    return Decimal(_price_entry(instance_type, region, use)["usd_per_hour"])


def _instance_seconds(instance_count: int, seconds: float | int) -> tuple[int, Decimal]:
    if isinstance(instance_count, bool) or not isinstance(instance_count, int) or instance_count < 1:
        raise ValueError(f"instance count must be a positive integer, got {instance_count!r}")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float | Decimal) or seconds < 0:
        raise ValueError(f"seconds must be a non-negative number, got {seconds!r}")
    return instance_count, Decimal(str(seconds))


def job_cost_usd(
    instance_type: str, instance_count: int, seconds: float | int, region: str, use: InstanceUse = "training"
) -> float:
    """What `instance_count` instances for `seconds` (e.g. a training job's `BillableTimeInSeconds`) cost on demand,
    rounded like `rounded_usd`."""
    count, duration = _instance_seconds(instance_count, seconds)
    price = instance_price_per_hour(instance_type, region, use)
    return rounded_usd(price * count * duration / _SECONDS_PER_HOUR)


def _instance_worst_case(
    instance_type: str, instance_count: int, seconds: float | int, region: str, use: str, bound: str
) -> dict[str, Any]:
    count, duration = _instance_seconds(instance_count, seconds)
    entry = _price_entry(instance_type, region, use)
    price = Decimal(entry["usd_per_hour"])
    return {
        "use": use,
        "instance_type": instance_type,
        "instance_count": count,
        "seconds": seconds,
        "seconds_bound": bound,
        "region": region,
        "usd_per_hour": float(price),
        "price_confirmed": bool(entry.get("confirmed")),
        "price_source": instance_price_table()["source"],
        "worst_case_usd": rounded_usd(price * count * duration / _SECONDS_PER_HOUR),
    }


def training_worst_case(request: Mapping[str, Any], region: str) -> dict[str, Any]:
    """The most a CreateTrainingJob request can cost on demand: `MaxRuntimeInSeconds` x `InstanceCount` x the
    instance's training price (the service stops the job at its maximum runtime)."""
    name = request.get("TrainingJobName", "<unnamed>")
    try:
        resources = request["ResourceConfig"]
        instance_type, count = resources["InstanceType"], resources["InstanceCount"]
        seconds = request["StoppingCondition"]["MaxRuntimeInSeconds"]
    except (KeyError, TypeError) as exc:
        raise ValueError(
            f"training job {name}: cannot price a request without ResourceConfig.InstanceType/InstanceCount "
            f"and StoppingCondition.MaxRuntimeInSeconds (missing {exc})"
        ) from None
    return _instance_worst_case(
        instance_type, count, seconds, region, "training", "StoppingCondition.MaxRuntimeInSeconds"
    )


def transform_worst_case(request: Mapping[str, Any], region: str, max_seconds: float | int) -> dict[str, Any]:
    """The most a CreateTransformJob request can cost on demand if it runs at most `max_seconds`: the API has no
    maximum runtime for transform jobs, so the caller states the bound (and should stop the job when it passes)."""
    name = request.get("TransformJobName", "<unnamed>")
    try:
        resources = request["TransformResources"]
        instance_type, count = resources["InstanceType"], resources["InstanceCount"]
    except (KeyError, TypeError) as exc:
        raise ValueError(
            f"transform job {name}: cannot price a request without TransformResources.InstanceType/InstanceCount "
            f"(missing {exc})"
        ) from None
    return _instance_worst_case(instance_type, count, max_seconds, region, "transform", "stated by the caller")


def run_budget_problem(spent_usd: float, next_steps: Mapping[str, float], budget_usd: float, what: str) -> str | None:
    """For a run that pays step by step (the active-learning loop): the message that stops it when what it has
    spent plus the worst case of its next paid steps (`{"training job x": usd, ...}`) exceeds the budget; None
    when it fits."""
    committed = Decimal(str(spent_usd)) + sum((Decimal(str(v)) for v in next_steps.values()), Decimal(0))
    if committed <= Decimal(str(budget_usd)):
        return None
    steps = " + ".join(f"{name} worst case ${usd:,.2f}" for name, usd in next_steps.items())
    return (
        f"{what}: ${spent_usd:,.2f} spent so far + {steps} = ${float(committed):,.2f} exceeds the budget "
        f"${budget_usd:,.2f}. Nothing was started; raise budget_usd to go on."
    )
