"""What labeling costs: the API's price shape, per-object prices read from a request, job cost, worst case.

One home for money, used by the request builder (a price becomes `PublicWorkforceTaskPrice`), the report (what a
job cost) and the budget guardrails (what a job may cost at most). Amounts are Decimal inside and rounded to a
hundredth of a cent on the way out, so sums over thousands of objects carry no float noise.

Price basis: every labeled object pays the service fee; a human-labeled object also pays
`NumberOfHumanWorkersPerDataObject` x the public task price — only on the public workforce (a private team is paid
outside AWS, a vendor through AWS Marketplace).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

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
