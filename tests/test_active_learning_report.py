"""The active-learning loop's report: cumulative counts and shares, costs, truth accuracies, the rendered files."""

from __future__ import annotations

import copy
import json

import pytest

from groundtruth.active_learning_report import UNKNOWN_ACCURACY, build_report, render_report, summary_text

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EDGES = [i / 20 for i in range(21)]


def a_round(number: int, auto: int, human: int, scored: int, after: tuple[int, int, int], **extra) -> dict:
    counts = [0] * 20
    counts[19], counts[5] = auto, scored - auto
    return {
        "round": number,
        "training_job": f"al-train-{number}",
        "model_arn": f"arn:aws:sagemaker:us-east-1:123456789012:model/al-train-{number}",
        "validation_accuracy": 0.8 + number / 100,
        "threshold": 0.5,
        "scored": scored,
        "auto_labeled": auto,
        "human_labeled": human,
        "labeling_job": f"al-label-{number}" if human else None,
        "margin_histogram": {"edges": EDGES, "counts": counts},
        "cost_usd": {"training": 0.123456, "transform": 0.05, "labeling": 0.1 * human},
        "after": dict(zip(("human_labeled", "auto_labeled", "unlabeled"), after, strict=True)),
        **extra,
    }


def a_history(**overrides) -> dict:
    """1,000 headlines, 10% labeled up front, a bootstrap job to 20%, then three rounds (the last with no batch)."""
    history = {
        "name": "news",
        "dag_id": "gt_active_learning_news",
        "run_id": "manual__2024-01-01",
        "label_attribute": "category",
        "model_kind": "blazingtext",
        "objects": 1000,
        "initial": {"human_labeled": 100, "auto_labeled": 0, "unlabeled": 900},
        "bootstrap": {"job_name": "al-bootstrap", "human_labeled": 100, "cost_usd": 12.34567},
        "rounds": [
            a_round(1, auto=300, human=100, scored=800, after=(300, 300, 400)),
            a_round(2, auto=200, human=100, scored=400, after=(400, 500, 100)),
            a_round(3, auto=60, human=0, scored=100, after=(400, 560, 40), validation_accuracy=None),
        ],
        "final_manifest": "s3://bucket/al/final_output.manifest",
        "model_arn": "arn:aws:sagemaker:us-east-1:123456789012:model/al-train-3",
        "truth": None,
    }
    return {**history, **overrides}


# -- numbers --------------------------------------------------------------------------------------------------------
def test_totals_count_every_human_label_initial_bootstrap_and_rounds():
    totals = build_report(a_history())["totals"]
    assert totals["objects"] == 1000
    assert totals["human_labeled"] == 100 + 100 + 100 + 100
    assert totals["auto_labeled"] == 300 + 200 + 60
    assert totals["unlabeled"] == 40
    assert (totals["human_labeled_pct"], totals["auto_labeled_pct"]) == (40.0, 56.0)
    assert totals["rounds"] == 3
    assert totals["final_manifest"] == "s3://bucket/al/final_output.manifest"
    assert totals["model_arn"].endswith("model/al-train-3")


def test_percentages_follow_the_counts_not_constants():
    history = a_history(objects=3000, initial={"human_labeled": 1000, "auto_labeled": 1, "unlabeled": 1999})
    history["bootstrap"] = None
    history["rounds"] = []
    totals = build_report(history)["totals"]
    assert (totals["human_labeled_pct"], totals["auto_labeled_pct"]) == (33.3, 0.0)
    assert totals["unlabeled"] == 1999


def test_rounds_carry_cumulative_shares_of_the_manifest():
    report = build_report(a_history())
    cumulative = [(r["cumulative"]["human_labeled_pct"], r["cumulative"]["auto_labeled_pct"]) for r in report["rounds"]]
    assert cumulative == [(30.0, 30.0), (40.0, 50.0), (40.0, 56.0)]
    assert report["bootstrap"]["cumulative"]["human_labeled_pct"] == 20.0
    first = report["rounds"][0]
    assert (first["round"], first["human_labeled"], first["auto_labeled"], first["scored"]) == (1, 100, 300, 800)
    assert (first["training_job"], first["labeling_job"]) == ("al-train-1", "al-label-1")
    assert first["margin_histogram"]["counts"][19] == 300 and len(first["margin_histogram"]["edges"]) == 21
    assert report["rounds"][2]["labeling_job"] is None
    assert report["rounds"][2]["validation_accuracy"] is None
    assert report["inconsistencies"] == []


def test_costs_are_rounded_per_kind_per_round_and_in_total():
    report = build_report(a_history())
    assert report["rounds"][0]["cost_usd"] == {
        "training": 0.1235,
        "transform": 0.05,
        "labeling": 10.0,
        "total": 10.1735,
    }
    assert report["bootstrap"]["cost_usd"] == 12.3457
    # the total sums the exact amounts once, then rounds: 3 x 0.123456 + 3 x 0.05 + 20 + 12.34567
    assert report["totals"]["cost_usd"] == 32.866
    assert report["totals"]["cost_by_kind_usd"] == {
        "training": 0.3704,
        "transform": 0.15,
        "labeling": 32.3457,
        "total": 32.866,
    }


def test_truth_gives_both_accuracies_and_none_without_it():
    assert build_report(a_history())["totals"]["auto_label_accuracy"] is None
    assert build_report(a_history())["totals"]["human_label_accuracy"] is None
    truth = {"auto": {"checked": 560, "correct": 504}, "human": {"checked": 400, "correct": 399}}
    totals = build_report(a_history(truth=truth))["totals"]
    assert totals["auto_label_accuracy"] == 0.9
    assert totals["human_label_accuracy"] == 0.9975
    nothing_checked = {"auto": {"checked": 0, "correct": 0}, "human": {"checked": 400, "correct": 400}}
    assert build_report(a_history(truth=nothing_checked))["totals"]["auto_label_accuracy"] is None


def test_seed_figures_are_the_published_ones():
    assert build_report(a_history())["seed"] == {
        "human_labeled_pct": 52.0,
        "auto_labeled_pct": 48.0,
        "source": "the seed's Part 1 (BlazingText, 10,000 UCI News headlines)",
    }


def test_after_counts_that_disagree_with_the_rounds_are_listed_not_hidden():
    history = a_history()
    history["rounds"][1]["after"]["auto_labeled"] = 499
    report = build_report(history)
    assert len(report["inconsistencies"]) == 1 and "round 2" in report["inconsistencies"][0]
    assert report["totals"]["auto_labeled"] == 560
    assert "inconsistent: round 2" in summary_text(report)


def test_build_report_leaves_the_history_alone_and_is_json_safe():
    history = a_history()
    before = copy.deepcopy(history)
    report = build_report(history)
    assert history == before
    assert json.loads(json.dumps(report, allow_nan=False)) == report


# -- rendering ------------------------------------------------------------------------------------------------------
def test_render_writes_json_html_and_three_pngs(tmp_path):
    report = build_report(a_history())
    paths = render_report(report, tmp_path / "out")
    assert set(paths) == {"json", "html", "shares", "margins", "cost"}
    assert json.loads(paths["json"].read_text()) == report
    for name in ("shares", "margins", "cost"):
        assert paths[name].name == f"{name}.png"
        assert paths[name].read_bytes().startswith(PNG_MAGIC)
    page = paths["html"].read_text()
    assert "data:image/png;base64," in page
    assert "al-label-2" in page and "al-bootstrap" in page
    assert UNKNOWN_ACCURACY in page and "auto-label accuracy" not in page
    assert "52%" in page and "48%" in page


def test_html_escapes_names_from_config_and_data(tmp_path):
    history = a_history(name="<script>alert(1)</script>", run_id='run"&<b>')
    history["rounds"][0]["training_job"] = "<img src=x onerror=alert(2)>"
    page = render_report(build_report(history), tmp_path)["html"].read_text()
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img src=x" not in page and "<b>" not in page.split("run <code>")[1].split("</code>")[0]


def test_html_shows_accuracy_rows_only_with_truth(tmp_path):
    truth = {"auto": {"checked": 560, "correct": 504}, "human": {"checked": 400, "correct": 399}}
    page = render_report(build_report(a_history(truth=truth)), tmp_path)["html"].read_text()
    assert "auto-label accuracy" in page and "90.0% of 560" in page
    assert "human-label accuracy" in page and "99.8% of 400" in page
    assert UNKNOWN_ACCURACY not in page


def test_render_a_run_with_no_rounds_and_no_bootstrap(tmp_path):
    history = a_history(rounds=[], bootstrap=None, final_manifest=None, model_arn=None)
    paths = render_report(build_report(history), tmp_path)
    assert all(paths[name].read_bytes().startswith(PNG_MAGIC) for name in ("shares", "margins", "cost"))


def test_render_is_byte_identical_for_the_same_report(tmp_path):
    report = build_report(a_history())
    first = render_report(report, tmp_path / "a")
    second = render_report(report, tmp_path / "b")
    assert all(first[k].read_bytes() == second[k].read_bytes() for k in first)


# -- summary --------------------------------------------------------------------------------------------------------
def test_summary_text_is_short_for_eight_rounds():
    rounds = [a_round(n, auto=50, human=50, scored=800 - 100 * (n - 1), after=(0, 0, 0)) for n in range(1, 9)]
    for n, entry in enumerate(rounds, start=1):
        entry["after"] = {"human_labeled": 200 + 50 * n, "auto_labeled": 50 * n, "unlabeled": 800 - 100 * n}
    text = summary_text(build_report(a_history(rounds=rounds)))
    lines = text.splitlines()
    assert len(lines) < 20
    assert max(len(line) for line in lines) <= 100
    assert "label accuracy: " + UNKNOWN_ACCURACY in text
    assert "seed: 52% human, 48% auto" in text


def test_summary_text_names_rounds_totals_and_accuracies():
    truth = {"auto": {"checked": 560, "correct": 504}, "human": {"checked": 400, "correct": 399}}
    text = summary_text(build_report(a_history(truth=truth)))
    total = next(line for line in text.splitlines() if line.startswith("total"))
    assert total.split()[1:5] == ["400", "560", "40.0", "56.0"]
    assert "bootstrap" in text and "auto 90.0% of 560, human 99.8% of 400" in text


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_non_finite_validation_accuracy_reads_as_unknown(value):
    history = a_history()
    history["rounds"][0]["validation_accuracy"] = value
    assert build_report(history)["rounds"][0]["validation_accuracy"] is None
