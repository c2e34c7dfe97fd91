"""The active-learning loop's report: per round what humans and the model labeled, the margins, the cost, and the
seed's published 52% / 48% beside it.

Three layers, like the experiment report (`groundtruth.report`):

- pure numbers — `build_report` turns the loop history the DAG keeps (plain JSON) into the `report.json` document;
- rendering — `render_report` writes `report.json`, three PNGs and a self-contained `report.html`; `summary_text` is
  the same in a few fixed-width lines for logs and the demo's terminal;
- `truth_check` asks the emulator how many final labels are right. Only the emulator knows a text's true class, so
  on AWS (no endpoint URL) the accuracies stay unknown rather than guessed.

Counts are cumulative over the whole manifest: the labels it came with, the bootstrap job's, then each round's auto
labels and human batch. Every percentage is computed from those counts; the only constants are the seed's own
published shares. Matplotlib is imported inside the render functions only: DAG files import this module.
"""

from __future__ import annotations

import contextlib
import functools
import html
import itertools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib import error as urlerror
from urllib import request as urlrequest

from groundtruth.pricing import rounded_usd
from groundtruth.report_kit import empty as _empty
from groundtruth.report_kit import esc as _e
from groundtruth.report_kit import figures, page, render_pngs, write_report_files
from groundtruth.report_kit import fmt as _fmt
from groundtruth.report_kit import table as _table

SEED = {
    "human_labeled_pct": 52.0,
    "auto_labeled_pct": 48.0,
    "source": "the seed's Part 1 (BlazingText, 10,000 UCI News headlines)",
}
_SEED_OBJECTS = 10_000
COST_KINDS = ("training", "transform", "labeling")
TRUTH_CHECK_ROUTE = "/_emulator/text-truth/check"
TRUTH_CHECK_CHUNK = 5000
UNKNOWN_ACCURACY = "not known (no ground truth on AWS)"


# -- numbers --------------------------------------------------------------------------------------------------------
def _pct(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 1) if whole else 0.0


def _usd(amounts: Iterable[float | Decimal]) -> float:
    return rounded_usd(sum((Decimal(str(a)) for a in amounts), Decimal(0)))


def _cost(costs: Mapping[str, float | Decimal]) -> dict[str, float]:
    """Per kind and in total, each rounded once from the exact amounts."""
    per_kind = {kind: rounded_usd(costs.get(kind) or 0.0) for kind in COST_KINDS}
    return {**per_kind, "total": _usd(costs.get(kind) or 0.0 for kind in COST_KINDS)}


def _finite(value: float | None) -> float | None:
    # report.json is strict JSON: a NaN accuracy from a metric parser must read as "not known", not break the file
    return float(value) if value is not None and math.isfinite(value) else None


def _accuracy(truth: Mapping[str, Any] | None, who: str) -> float | None:
    counts = (truth or {}).get(who) or {}
    checked = int(counts.get("checked") or 0)
    return round(int(counts.get("correct") or 0) / checked, 4) if checked else None


def _shares(human: int, auto: int, objects: int) -> dict[str, Any]:
    return {
        "human_labeled": human,
        "auto_labeled": auto,
        "unlabeled": objects - human - auto,
        "human_labeled_pct": _pct(human, objects),
        "auto_labeled_pct": _pct(auto, objects),
    }


def build_report(history: Mapping[str, Any]) -> dict[str, Any]:
    """The `report.json` document of one loop run, from the loop history the active-learning DAG keeps.

    Cumulative counts add each step's labels to the manifest's initial ones; where the history's own `after`
    counts disagree with that sum the report lists the difference under `inconsistencies` instead of hiding it.
    """
    objects = int(history["objects"])
    initial = history["initial"]
    human, auto = int(initial["human_labeled"]), int(initial["auto_labeled"])
    inconsistencies: list[str] = []

    bootstrap = history.get("bootstrap")
    bootstrap_report = None
    if bootstrap:
        human += int(bootstrap["human_labeled"])
        bootstrap_report = {
            "job_name": bootstrap["job_name"],
            "human_labeled": int(bootstrap["human_labeled"]),
            "cost_usd": rounded_usd(bootstrap["cost_usd"]),
            "cumulative": _shares(human, auto, objects),
        }

    rounds = []
    for entry in history.get("rounds") or []:
        human += int(entry["human_labeled"])
        auto += int(entry["auto_labeled"])
        cumulative = _shares(human, auto, objects)
        after = entry.get("after") or {}
        for key in ("human_labeled", "auto_labeled", "unlabeled"):
            if key in after and int(after[key]) != cumulative[key]:
                inconsistencies.append(
                    f"round {entry['round']}: the loop counted {after[key]} {key.replace('_', '-')} objects after "
                    f"the round, the rounds' own counts add up to {cumulative[key]}"
                )
        rounds.append(
            {
                "round": int(entry["round"]),
                "human_labeled": int(entry["human_labeled"]),
                "auto_labeled": int(entry["auto_labeled"]),
                "cumulative": cumulative,
                "validation_accuracy": _finite(entry.get("validation_accuracy")),
                "threshold": float(entry["threshold"]),
                "scored": int(entry["scored"]),
                "margin_histogram": {
                    "edges": [float(e) for e in entry["margin_histogram"]["edges"]],
                    "counts": [int(c) for c in entry["margin_histogram"]["counts"]],
                },
                "cost_usd": _cost(entry.get("cost_usd") or {}),
                "training_job": entry.get("training_job"),
                "labeling_job": entry.get("labeling_job"),
                "model_arn": entry.get("model_arn"),
            }
        )

    totals_shares = _shares(human, auto, objects)
    if totals_shares["unlabeled"] < 0:
        inconsistencies.append(f"{human + auto} objects labeled, but the manifest has only {objects}")
    # totals add the history's exact amounts and round once, so per-round rounding does not accumulate
    spent = [entry.get("cost_usd") or {} for entry in history.get("rounds") or []]
    if bootstrap:
        spent.append({"labeling": bootstrap["cost_usd"]})
    cost = _cost({kind: sum(Decimal(str(c.get(kind) or 0.0)) for c in spent) for kind in COST_KINDS})
    truth = history.get("truth")
    return {
        "name": history["name"],
        "dag_id": history["dag_id"],
        "run_id": history["run_id"],
        "rounds": rounds,
        "bootstrap": bootstrap_report,
        "totals": {
            "objects": objects,
            "human_labeled": human,
            "auto_labeled": auto,
            "auto_labeled_pct": totals_shares["auto_labeled_pct"],
            "human_labeled_pct": totals_shares["human_labeled_pct"],
            "unlabeled": totals_shares["unlabeled"],
            "cost_usd": cost["total"],
            "cost_by_kind_usd": cost,
            "rounds": len(rounds),
            "final_manifest": history.get("final_manifest"),
            "model_arn": history.get("model_arn"),
            "auto_label_accuracy": _accuracy(truth, "auto"),
            "human_label_accuracy": _accuracy(truth, "human"),
        },
        "seed": dict(SEED),
        # extras
        "label_attribute": history.get("label_attribute"),
        "model_kind": history.get("model_kind"),
        "initial": {key: int(initial[key]) for key in ("human_labeled", "auto_labeled", "unlabeled")},
        "truth": truth,
        "inconsistencies": inconsistencies,
    }


def _accuracy_text(report: Mapping[str, Any], who: str) -> str:
    accuracy = report["totals"][f"{who}_label_accuracy"]
    checked = ((report.get("truth") or {}).get(who) or {}).get("checked")
    return f"{100 * accuracy:.1f}% of {checked:,}" if accuracy is not None else "—"


def summary_text(report: Mapping[str, Any]) -> str:
    """A fixed-width table of the rounds and the totals, for logs and the demo's console (13 lines for 8 rounds)."""
    header = (
        f"{'round':<9} {'human':>6} {'auto':>6} {'human%':>6} {'auto%':>6} {'val.acc':>7} {'thresh':>6} "
        f"{'scored':>7} {'cost $':>9}"
    )
    lines = [header, "-" * len(header)]
    initial = report.get("initial")
    if initial:
        objects = report["totals"]["objects"]
        lines.append(
            f"{'start':<9} {initial['human_labeled']:>6} {initial['auto_labeled']:>6} "
            f"{_pct(initial['human_labeled'], objects):>6.1f} {_pct(initial['auto_labeled'], objects):>6.1f}"
        )
    boot = report.get("bootstrap")
    if boot:
        cum = boot["cumulative"]
        lines.append(
            f"{'bootstrap':<9} {boot['human_labeled']:>6} {0:>6} {cum['human_labeled_pct']:>6.1f} "
            f"{cum['auto_labeled_pct']:>6.1f} {'—':>7} {'—':>6} {'—':>7} {boot['cost_usd']:>9.2f}"
        )
    for r in report["rounds"]:
        cum = r["cumulative"]
        lines.append(
            f"{r['round']:<9} {r['human_labeled']:>6} {r['auto_labeled']:>6} {cum['human_labeled_pct']:>6.1f} "
            f"{cum['auto_labeled_pct']:>6.1f} {_fmt(r['validation_accuracy'], '.3f'):>7} {r['threshold']:>6.2f} "
            f"{r['scored']:>7} {r['cost_usd']['total']:>9.2f}"
        )
    t, seed = report["totals"], report["seed"]
    lines.append("-" * len(header))
    lines.append(
        f"{'total':<9} {t['human_labeled']:>6} {t['auto_labeled']:>6} {t['human_labeled_pct']:>6.1f} "
        f"{t['auto_labeled_pct']:>6.1f} {'':>7} {'':>6} {'':>7} {t['cost_usd']:>9.2f}"
    )
    lines.append(
        f"{t['objects']:,} objects, {t['unlabeled']:,} unlabeled, {t['rounds']} rounds; seed: "
        f"{seed['human_labeled_pct']:.0f}% human, {seed['auto_labeled_pct']:.0f}% auto"
    )
    if report.get("truth"):
        lines.append(f"label accuracy: auto {_accuracy_text(report, 'auto')}, human {_accuracy_text(report, 'human')}")
    else:
        lines.append(f"label accuracy: {UNKNOWN_ACCURACY}")
    lines.extend(f"inconsistent: {note}" for note in report.get("inconsistencies") or [])
    return "\n".join(lines)


# -- rendering ------------------------------------------------------------------------------------------------------
_MARGIN_COLUMNS = 4  # small margin histograms per row
PLOTS = {
    "shares": "Share of the manifest labeled by humans and by the model, after each step",
    "margins": "Top-1 minus top-2 probability of the records each round's model scored (threshold dashed)",
    "cost": "Cost per round, by kind",
}


def render_report(report: Mapping[str, Any], out_dir: Path) -> dict[str, Path]:
    """Write `report.json`, one PNG per entry of PLOTS and a self-contained `report.html`; return their paths.

    The same report gives byte-identical files: no clock is read, PNGs carry no timestamp metadata.
    """
    margin_rows = math.ceil(max(1, len(report["rounds"])) / _MARGIN_COLUMNS)
    heights = {"shares": 4.0, "margins": 2.6 * margin_rows, "cost": 4.0}
    drawers = {"shares": _plot_shares, "margins": _plot_margins, "cost": _plot_cost}
    pngs = render_pngs(
        {name: (functools.partial(draw, report=report), heights[name]) for name, draw in drawers.items()}
    )
    return write_report_files(report, out_dir, pngs, functools.partial(report_html, report))


def _steps(report: Mapping[str, Any]) -> list[tuple[str, float, float]]:
    """(label, cumulative human %, cumulative auto %) at the start, after the bootstrap and after each round."""
    objects = report["totals"]["objects"]
    initial = report.get("initial") or {"human_labeled": 0, "auto_labeled": 0}
    steps = [("start", _pct(initial["human_labeled"], objects), _pct(initial["auto_labeled"], objects))]
    if report.get("bootstrap"):
        cum = report["bootstrap"]["cumulative"]
        steps.append(("bootstrap", cum["human_labeled_pct"], cum["auto_labeled_pct"]))
    for r in report["rounds"]:
        steps.append((f"round {r['round']}", r["cumulative"]["human_labeled_pct"], r["cumulative"]["auto_labeled_pct"]))
    return steps


def _plot_shares(fig, report: Mapping[str, Any]) -> None:
    ax = fig.add_subplot(1, 1, 1)
    seed = report["seed"]
    steps = [*_steps(report), ("seed (published)", seed["human_labeled_pct"], seed["auto_labeled_pct"])]
    x = list(range(len(steps)))
    human = [h for _, h, _ in steps]
    auto = [a for _, _, a in steps]
    hatch = [""] * (len(steps) - 1) + ["//"]
    for i in x:
        ax.bar(i, human[i], width=0.6, color="C0", hatch=hatch[i], label="human-labeled" if i == 0 else None)
        ax.bar(
            i, auto[i], width=0.6, bottom=human[i], color="C1", hatch=hatch[i], label="auto-labeled" if i == 0 else None
        )
    ax.axhline(seed["human_labeled_pct"], color="grey", linestyle="--", linewidth=1, label="seed's human share")
    ax.set_xticks(x, [label for label, _, _ in steps], rotation=30 if len(steps) > 8 else 0)
    ax.set_ylim(0, 105)
    ax.set_ylabel("% of the manifest (cumulative)")
    ax.set_title(PLOTS["shares"])
    ax.legend(loc="upper left", fontsize=8)


def _plot_margins(fig, report: Mapping[str, Any]) -> None:
    rounds = report["rounds"]
    if not rounds:
        _empty(fig.add_subplot(1, 1, 1), "no rounds: nothing was scored")
        return
    rows = math.ceil(len(rounds) / _MARGIN_COLUMNS)
    columns = min(len(rounds), _MARGIN_COLUMNS)
    for i, r in enumerate(rounds, start=1):
        ax = fig.add_subplot(rows, columns, i)
        edges, counts = r["margin_histogram"]["edges"], r["margin_histogram"]["counts"]
        if len(edges) == len(counts) + 1 and counts:
            widths = [b - a for a, b in itertools.pairwise(edges)]
            ax.bar(edges[:-1], counts, width=widths, align="edge", color="C2", edgecolor="white", linewidth=0.5)
        else:
            _empty(ax, "no histogram")
        ax.axvline(r["threshold"], color="C3", linestyle="--", linewidth=1)
        ax.set_xlim(0, 1)
        ax.set_title(f"round {r['round']}: {r['auto_labeled']:,} of {r['scored']:,} above {r['threshold']:.2f}")
        if (i - 1) % columns == 0:
            ax.set_ylabel("records")
        if i > len(rounds) - columns:
            ax.set_xlabel("margin")


def _plot_cost(fig, report: Mapping[str, Any]) -> None:
    ax = fig.add_subplot(1, 1, 1)
    bars: list[tuple[str, dict[str, float]]] = []
    if report.get("bootstrap"):
        bars.append(("bootstrap", {"training": 0.0, "transform": 0.0, "labeling": report["bootstrap"]["cost_usd"]}))
    bars.extend((f"round {r['round']}", r["cost_usd"]) for r in report["rounds"])
    if not bars:
        _empty(ax, "no cost: nothing was trained or labeled")
        ax.set_title(PLOTS["cost"])
        return
    x = list(range(len(bars)))
    bottom = [0.0] * len(bars)
    for n, kind in enumerate(COST_KINDS):
        values = [cost.get(kind, 0.0) for _, cost in bars]
        ax.bar(x, values, width=0.6, bottom=bottom, color=f"C{n + 4}", label=kind)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    for i, total in enumerate(bottom):
        ax.annotate(f"${total:,.2f}", (i, total), ha="center", va="bottom")
    ax.set_xticks(x, [label for label, _ in bars], rotation=30 if len(bars) > 8 else 0)
    # headroom above the tallest bar keeps its total and the legend apart
    ax.set_ylim(0, max(0.01, max(bottom)) * 1.3)
    ax.set_ylabel("USD")
    ax.set_title(PLOTS["cost"])
    ax.legend(loc="upper right")


# -- HTML -----------------------------------------------------------------------------------------------------------
def _arn(value: Any) -> str:
    return f'<span class="arn">{_e(value)}</span>'


def _round_rows(report: Mapping[str, Any]) -> list[list[str]]:
    rows = []
    boot = report.get("bootstrap")
    if boot:
        cum = boot["cumulative"]
        rows.append(
            [
                "bootstrap",
                _e(boot["human_labeled"], ","),
                "0",
                _e(cum["human_labeled_pct"], ".1f") + "%",
                _e(cum["auto_labeled_pct"], ".1f") + "%",
                "—",
                "—",
                "—",
                f"labeling ${_e(boot['cost_usd'], ',.2f')}",
                f"<b>${_e(boot['cost_usd'], ',.2f')}</b>",
                "—",
                _arn(boot["job_name"]),
                "—",
            ]
        )
    for r in report["rounds"]:
        cost, cum = r["cost_usd"], r["cumulative"]
        rows.append(
            [
                _e(r["round"]),
                _e(r["human_labeled"], ","),
                _e(r["auto_labeled"], ","),
                _e(cum["human_labeled_pct"], ".1f") + "%",
                _e(cum["auto_labeled_pct"], ".1f") + "%",
                _e(r["validation_accuracy"], ".3f"),
                _e(r["threshold"], ".2f"),
                _e(r["scored"], ","),
                " + ".join(f"{kind} ${_e(cost[kind], ',.2f')}" for kind in COST_KINDS),
                f"<b>${_e(cost['total'], ',.2f')}</b>",
                _arn(r["training_job"]),
                _arn(r["labeling_job"]),
                _arn(r["model_arn"]),
            ]
        )
    return rows


def _totals_rows(report: Mapping[str, Any]) -> list[list[str]]:
    t, seed, cost = report["totals"], report["seed"], report["totals"]["cost_by_kind_usd"]
    rows = [
        ["objects", _e(t["objects"], ","), _e(_SEED_OBJECTS, ",")],
        [
            "human-labeled",
            f"{_e(t['human_labeled'], ',')} ({_e(t['human_labeled_pct'], '.1f')}%)",
            _e(seed["human_labeled_pct"], ".0f") + "%",
        ],
        [
            "auto-labeled",
            f"{_e(t['auto_labeled'], ',')} ({_e(t['auto_labeled_pct'], '.1f')}%)",
            _e(seed["auto_labeled_pct"], ".0f") + "%",
        ],
        ["unlabeled", _e(t["unlabeled"], ","), "—"],
        ["rounds", _e(t["rounds"]), "—"],
        [
            "cost",
            " + ".join(f"{kind} ${_e(cost[kind], ',.2f')}" for kind in COST_KINDS)
            + f" = <b>${_e(cost['total'], ',.2f')}</b>",
            "—",
        ],
    ]
    if report.get("truth"):
        rows.append(["auto-label accuracy", _e(_accuracy_text(report, "auto")), "—"])
        rows.append(["human-label accuracy", _e(_accuracy_text(report, "human")), "—"])
    else:
        rows.append(["label accuracy", html.escape(UNKNOWN_ACCURACY), "—"])
    rows.append(["final manifest", _arn(t["final_manifest"]), "—"])
    rows.append(["final model", _arn(t["model_arn"]), "—"])
    return rows


def report_html(report: Mapping[str, Any], images: Mapping[str, bytes]) -> str:
    """The self-contained page: inline CSS, plots as data URIs, every value from config or data HTML-escaped."""
    totals = _table(["", "this run", "seed (published)"], _totals_rows(report), "totals")
    rounds = _table(
        [
            "round",
            "human",
            "auto",
            "human % (cum.)",
            "auto % (cum.)",
            "validation accuracy",
            "threshold",
            "scored",
            "cost by kind",
            "cost",
            "training job",
            "labeling job",
            "model",
        ],
        _round_rows(report),
        "rounds",
    )
    plots = figures(PLOTS, images)
    notes = "".join(f"<li>{_e(note)}</li>" for note in report.get("inconsistencies") or [])
    initial = report.get("initial") or {}
    title = f"Active-learning report: {report['name']}"
    return page(
        title,
        [
            f'<p class="note">DAG <code>{_e(report["dag_id"])}</code>, run <code>{_e(report["run_id"])}</code>; '
            f"label attribute <code>{_e(report.get('label_attribute'))}</code>, model "
            f"<code>{_e(report.get('model_kind'))}</code>. The manifest came with "
            f"{_e(initial.get('human_labeled'), ',')} human and {_e(initial.get('auto_labeled'), ',')} auto labels."
            "</p>",
            f'<h2 class="warn">Inconsistent counts</h2><ul class="warn">{notes}</ul>' if notes else "",
            f"<h2>Totals beside the seed</h2>{totals}",
            f'<p class="note">Seed: {_e(report["seed"]["source"])}.</p>',
            f"<h2>Per round</h2>{rounds}",
            f"<h2>Plots</h2>{plots}",
            "<h2>How to read this</h2>",
            '<ul class="note">',
            "<li>Each <b>round</b> trains a model on every human label so far, scores the unlabeled records, "
            "auto-labels those whose top-1 minus top-2 probability clears the <b>threshold</b> and sends a batch of "
            "the rest to humans. <b>human</b> and <b>auto</b> are what that round labeled; the percentages are "
            "cumulative shares of the whole manifest, including the labels it came with.</li>",
            "<li>The <b>seed</b> column is the published result of the sample this workflow follows; it ran on "
            "10,000 UCI News headlines with 20% labeled up front.</li>",
            "<li><b>Cost</b> adds training and batch-transform instance time to the labeling jobs' per-object "
            "price. <b>Label accuracy</b> needs the true classes, which only the emulator knows.</li>",
            "</ul>",
        ],
    )


# -- the emulator's truth -------------------------------------------------------------------------------------------
def truth_check(
    endpoint_url: str | None, pairs: Sequence[tuple[str, str]], chunk: int = TRUTH_CHECK_CHUNK
) -> dict[str, int] | None:
    """How many `(text, class name)` labels are right, by the emulator's true classes: `{"checked", "correct",
    "unknown"}` summed over chunks of `chunk` pairs.

    None when there is no endpoint URL (real AWS) or the endpoint has no such route (404: not our emulator). Any
    other refusal is a RuntimeError carrying the emulator's reason. Only the pairs travel: no credentials, no
    signature.
    """
    if endpoint_url is None:
        return None
    if not endpoint_url.startswith(("http://", "https://")):
        raise ValueError(f"endpoint URL {endpoint_url!r} must be http:// or https://")
    url = endpoint_url.rstrip("/") + TRUTH_CHECK_ROUTE
    totals = {"checked": 0, "correct": 0, "unknown": 0}
    # one request even for no pairs: it is what tells our emulator from any other endpoint
    for start in range(0, max(len(pairs), 1), chunk):
        body = json.dumps({"pairs": [list(p) for p in pairs[start : start + chunk]]}).encode("utf-8")
        req = urlrequest.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})  # noqa: S310 - http(s), checked above
        try:
            with urlrequest.urlopen(req, timeout=60) as response:  # noqa: S310 - http(s), checked above
                answer = json.loads(response.read())
        except urlerror.HTTPError as exc:
            if exc.code == 404:
                return None
            detail = exc.read().decode("utf-8", "replace")
            with contextlib.suppress(ValueError, KeyError, TypeError):
                detail = json.loads(detail)["error"]
            raise RuntimeError(
                f"the emulator at {endpoint_url} refused the truth check ({exc.code}): {detail}"
            ) from None
        except urlerror.URLError as exc:
            raise RuntimeError(
                f"cannot reach the emulator at {endpoint_url} for the truth check: {exc.reason}"
            ) from None
        for key in totals:
            totals[key] += int(answer[key])
    return totals
