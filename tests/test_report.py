"""The comparison report: cost priced from the request, quality against references, the schema, the rendered files."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from groundtruth.outputs import ImageLabel, JobOutputs, RoundCounts, TrainingCurve
from groundtruth.pricing import labeling_cost, price_to_usd, pricing_from_request
from groundtruth.report import (
    JobSummaryInput,
    build_report,
    judge_labels,
    miou_by_confidence,
    miou_summary,
    reference_pixel_boxes,
    render_report,
    summary_text,
)

REGION = "us-east-1"
PUBLIC = f"arn:aws:sagemaker:{REGION}:394669845002:workteam/public-crowd/default"
PRIVATE = f"arn:aws:sagemaker:{REGION}:123456789012:workteam/private-crowd/birders"
VENDOR = f"arn:aws:sagemaker:{REGION}:123456789012:workteam/vendor-crowd/acme"
SEED_PRICE = {"AmountInUsd": {"Dollars": 0, "Cents": 3, "TenthFractionsOfACent": 6}}


def seed_request(workers: int = 3, workteam: str = PUBLIC, initial_model: str | None = None) -> dict:
    """The parts of the seed's CreateLabelingJob request that pricing and the report read."""
    algorithms = {
        "LabelingJobAlgorithmSpecificationArn": "arn:...:labeling-job-algorithm-specification/object-detection"
    }
    if initial_model:
        algorithms["InitialActiveLearningModelArn"] = initial_model
    return {
        "HumanTaskConfig": {
            "WorkteamArn": workteam,
            "NumberOfHumanWorkersPerDataObject": workers,
            "PublicWorkforceTaskPrice": SEED_PRICE,
        },
        "LabelingJobAlgorithmsConfig": algorithms,
    }


# -- cost -----------------------------------------------------------------------------------------------------------
def test_task_price_adds_dollars_cents_and_tenths_of_a_cent():
    assert float(price_to_usd({"Dollars": 1, "Cents": 20, "TenthFractionsOfACent": 5})) == pytest.approx(1.205)
    assert float(price_to_usd(SEED_PRICE["AmountInUsd"])) == pytest.approx(0.036)
    assert float(price_to_usd(SEED_PRICE)) == pytest.approx(0.036)
    assert price_to_usd(None) == 0


def test_seed_job_1_priced_from_its_request():
    pricing = pricing_from_request(seed_request())
    assert pricing.human_object_usd == pytest.approx(0.188)  # $0.08 fee + 3 x $0.036
    assert labeling_cost(651, 599, pricing) == {
        "human": pytest.approx(651 * (0.08 + 3 * 0.036)),
        "machine": pytest.approx(599 * 0.08),
        "total": pytest.approx(651 * 0.188 + 599 * 0.08),
    }


def test_five_workers_reproduce_the_seeds_published_costs():
    # The seed table priced human images at the notebook's HUMAN_PRICE = 0.08 + 5 x 0.036 = 0.26.
    cost = labeling_cost(651, 599, pricing_from_request(seed_request(workers=5)))
    assert (cost["human"], cost["machine"]) == (pytest.approx(169.26), pytest.approx(47.92))


@pytest.mark.parametrize("workteam", [PRIVATE, VENDOR])
def test_private_and_vendor_teams_pay_only_the_service_fee(workteam):
    pricing = pricing_from_request(seed_request(workteam=workteam))
    assert pricing.task_price_usd == 0.0
    assert labeling_cost(10, 5, pricing) == {"human": pytest.approx(0.8), "machine": pytest.approx(0.4), "total": 1.2}


def test_service_fee_is_a_parameter():
    pricing = pricing_from_request(seed_request(), service_fee_usd=0.012)
    assert labeling_cost(100, 100, pricing) == {
        "human": pytest.approx(100 * (0.012 + 3 * 0.036)),
        "machine": pytest.approx(1.2),
        "total": pytest.approx(13.2),
    }


# -- quality --------------------------------------------------------------------------------------------------------
def label(image_id: str, boxes, confidences, human: bool) -> ImageLabel:
    return ImageLabel(f"s3://b/images/{image_id}.jpg", True, human, list(boxes), list(confidences), 100, 100)


def test_miou_groups_human_and_machine_and_skips_images_without_reference():
    labels = [
        label("h1", [(0, 0, 10, 10)], [0.9], human=True),  # exact: 1.0
        label("m1", [(0, 0, 10, 10)], [0.35], human=False),  # half the reference area: 0.5
        label("m2", [], [], human=False),  # nothing found, nothing there: 1.0
        label("x9", [(0, 0, 5, 5)], [0.5], human=False),  # no reference entry: not judged
        ImageLabel("s3://b/images/u.jpg", labeled=False),
    ]
    references = {"h1": [(0, 0, 10, 10)], "m1": [(0, 0, 10, 20)], "m2": [], "u": [(0, 0, 1, 1)]}
    judged = judge_labels(labels, references)
    assert [j.image_id for j in judged] == ["h1", "m1", "m2"]
    assert miou_summary(judged) == {"all": pytest.approx(2.5 / 3, abs=1e-4), "human": 1.0, "machine": 0.75}
    bins = miou_by_confidence(judged)
    assert len(bins) == 10 and sum(b["images"] for b in bins) == 2  # m2 has no boxes, hence no confidence
    assert (bins[3]["machine_images"], bins[3]["machine_miou"]) == (1, 0.5)
    assert (bins[9]["human_images"], bins[9]["human_miou"]) == (1, 1.0)


def test_miou_of_an_empty_group_is_none_not_zero():
    assert miou_summary(judge_labels([label("h", [(0, 0, 1, 1)], [1.0], True)], {"h": [(0, 0, 1, 1)]})) == {
        "all": 1.0,
        "human": 1.0,
        "machine": None,
    }


def test_reference_fractions_become_pixels_using_the_manifest_image_size():
    labels = [ImageLabel("s3://b/i/abc.jpg", True, width=200, height=100)]
    assert reference_pixel_boxes({"abc": [(0.1, 0.6, 0.2, 0.7)], "zzz": [(0, 1, 0, 1)]}, labels) == {
        "abc": [(20, 20, 100, 50)]
    }


# -- the report -----------------------------------------------------------------------------------------------------
SCHEMA_JOB_KEYS = [
    "key",
    "job_name",
    "status",
    "pretrained_model_arn",
    "final_model_arn",
    "objects",
    "human_labeled",
    "machine_labeled",
    "machine_labeled_pct",
    "human_boxes",
    "machine_boxes",
    "al_iterations",
    "cost_usd",
    "miou",
    "wall_seconds",
]


def job_input(key: str, name: str, human: int, machine: int, initial_model: str | None = None) -> JobSummaryInput:
    model_out = f"arn:aws:sagemaker:{REGION}:123456789012:model/{name}-final"
    rounds = [
        RoundCounts(1, 10, 15),
        RoundCounts(2, human - 10, 2 * (human - 10)),
        RoundCounts(3, 0, 0, machine, machine),
    ]
    labels = [label(f"{key}-h{i}", [(0, 0, 10, 10)], [0.99], True) for i in range(3)]
    labels += [label(f"{key}-m{i}", [(0, 0, 10, 10)], [0.6 + 0.1 * i], False) for i in range(3)]
    references = {lb.image_id: [(0, 0, 10, 10 + 5 * n)] for n, lb in enumerate(labels)}
    return JobSummaryInput(
        key=key,
        description={
            "LabelingJobName": name,
            "LabelingJobStatus": "Completed",
            "CreationTime": datetime(2019, 5, 17, 1, 0, tzinfo=UTC),
            "LastModifiedTime": datetime(2019, 5, 17, 5, 30, tzinfo=UTC),
            "LabelCounters": {"TotalLabeled": human + machine, "HumanLabeled": human, "MachineLabeled": machine},
            "LabelingJobOutput": {"OutputDatasetS3Uri": "s3://b/o.manifest", "FinalActiveLearningModelArn": model_out},
        },
        outputs=JobOutputs(
            job_name=name,
            output_uri=f"s3://b/out/{name}/",
            label_attribute="category",
            rounds=rounds,
            training=[TrainingCurve(f"{name}-train-3", 3, 190, [0.1, 0.3, None, 0.45])],
            labels=labels,
        ),
        request=seed_request(initial_model=initial_model),
        references=references,
    )


def three_jobs(name_1: str = "birds-iteration-1") -> list[JobSummaryInput]:
    first = job_input("iteration-1", name_1, 651, 599)
    model = first.description["LabelingJobOutput"]["FinalActiveLearningModelArn"]
    return [
        first,
        job_input("iteration-2", "birds-iteration-2", 260, 990, model),
        job_input("iteration-3", "b-3", 498, 752),
    ]


def test_report_has_exactly_the_architecture_schema():
    report = build_report("birds", "labeling_experiment_birds", "manual__2019-05-17", three_jobs())
    assert list(report) == ["dag_id", "run_id", "experiment", "jobs", "reference"]
    assert [j["key"] for j in report["jobs"]] == ["iteration-1", "iteration-2", "iteration-3"]
    for job in report["jobs"]:
        assert list(job)[: len(SCHEMA_JOB_KEYS)] == SCHEMA_JOB_KEYS
        for field in ("objects", "human_labeled", "machine_labeled", "human_boxes", "machine_boxes", "al_iterations"):
            assert type(job[field]) is int, field
        for field in ("machine_labeled_pct", "wall_seconds"):
            assert type(job[field]) is float, field
        assert set(job["cost_usd"]) == {"human", "machine", "total"}
        assert all(type(v) is float for v in job["cost_usd"].values())
        assert set(job["miou"]) == {"all", "human", "machine"}
        assert all(v is None or type(v) is float for v in job["miou"].values())
        assert isinstance(job["final_model_arn"], str)
    one, two, three = report["jobs"]
    assert (one["objects"], one["human_labeled"], one["machine_labeled"], one["machine_labeled_pct"]) == (
        1250,
        651,
        599,
        47.9,
    )
    assert one["cost_usd"]["human"] == pytest.approx(651 * 0.188)
    assert (one["pretrained_model_arn"], three["pretrained_model_arn"]) == (None, None)
    assert two["pretrained_model_arn"] == one["final_model_arn"]
    assert one["al_iterations"] == 3 and one["human_boxes"] == 15 + 2 * 641
    assert one["wall_seconds"] == 4.5 * 3600
    assert one["miou"]["human"] is not None and one["miou"]["machine"] is not None
    json.dumps(report, allow_nan=False)  # JSON-safe as it stands


def test_reference_is_the_seeds_published_table_with_its_price_basis():
    reference = build_report("birds", "d", "r", [])["reference"]
    rows = {row["key"]: row for row in reference["jobs"]}
    assert (rows["iteration-1"]["human_labeled"], rows["iteration-1"]["machine_boxes"]) == (651, 930)
    assert rows["iteration-2"]["cost_usd"] == {"human": 67.6, "machine": 79.2, "total": 146.8}
    assert rows["iteration-3"]["al_iterations"] == 4
    assert reference["price_basis"]["human_per_image_usd"] == 0.26
    assert rows["iteration-1"]["cost_usd_request_basis"]["human"] == pytest.approx(122.388)


def test_summary_text_has_one_line_per_job():
    report = build_report("birds", "d", "r", three_jobs())
    lines = summary_text(report).splitlines()
    assert len(lines) == 2 + 3 and lines[2].startswith("iteration-1") and "47.9" in lines[2]


# -- rendering ------------------------------------------------------------------------------------------------------
HOSTILE = "<script>alert(1)</script>"
HOSTILE_JOB = 'job"><img src=x onerror=alert(2)>'


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> tuple[dict, dict[str, Path]]:
    report = build_report(HOSTILE, "labeling_experiment_<b>x</b>", "manual__<i>&run</i>", three_jobs(HOSTILE_JOB))
    return report, render_report(report, tmp_path_factory.mktemp("report"))


def test_render_writes_json_html_and_four_pngs(rendered):
    report, paths = rendered
    assert set(paths) == {"json", "html", "costs", "counts", "training_curves", "miou_confidence"}
    assert json.loads(paths["json"].read_text()) == report
    for name in ("costs", "counts", "training_curves", "miou_confidence"):
        data = paths[name].read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", name
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")  # IHDR
        assert (width, height) == (1100, 400), name


def test_html_escapes_everything_from_config_and_data(rendered):
    _, paths = rendered
    page = paths["html"].read_text()
    assert HOSTILE not in page and "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert HOSTILE_JOB not in page and "onerror=alert(2)>" not in page
    assert "<b>x</b>" not in page and "<i>&run</i>" not in page
    assert "manual__&lt;i&gt;&amp;run&lt;/i&gt;" in page


def test_html_is_self_contained(rendered):
    _, paths = rendered
    page = paths["html"].read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.IGNORECASE)
    assert "<link" not in page.lower() and "@import" not in page and "url(" not in page
    images = re.findall(r'<img [^>]*src="([^"]+)"', page)
    assert len(images) == 4 and all(src.startswith("data:image/png;base64,") for src in images)
    # The seed's table sits beside the run's, and the page explains itself.
    assert "The seed's published result" in page and "How to read this" in page and "$169.26" in page


def test_same_report_renders_byte_identical_files(rendered, tmp_path):
    report, first = rendered
    second = render_report(report, tmp_path)
    assert all(first[name].read_bytes() == second[name].read_bytes() for name in first)


def test_render_copes_with_a_run_that_has_nothing_yet(tmp_path):
    empty = JobSummaryInput(
        "iteration-1",
        {"LabelingJobName": "j", "LabelingJobStatus": "Failed", "FailureReason": "ClientError: <no manifest>"},
        JobOutputs("j", "s3://b/o/j/", "category"),
    )
    report = build_report("birds", "d", "r", [empty])
    job = report["jobs"][0]
    assert (job["objects"], job["cost_usd"]["total"], job["miou"]["all"], job["wall_seconds"]) == (0, 0.0, None, 0.0)
    page = render_report(report, tmp_path)["html"].read_text()
    assert "ClientError: &lt;no manifest&gt;" in page


def test_importing_the_report_does_not_import_matplotlib():
    code = "import sys, groundtruth.report; assert 'matplotlib' not in sys.modules, 'matplotlib imported'"
    plugins = str(Path(__file__).resolve().parent.parent / "plugins")
    subprocess.run([sys.executable, "-c", code], check=True, env={"PYTHONPATH": plugins}, timeout=60)
