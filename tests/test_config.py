"""Experiment configs: validation names the file and field; a bad file never hides the good ones."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from groundtruth.config import ConfigError, load_experiment, with_params
from groundtruth.manifests import bounding_box_template, class_labels, input_manifest, read_manifest
from tests.dagbag_probe import parse_dags

REPO = Path(__file__).resolve().parent.parent
BIRDS = REPO / "include" / "experiments" / "birds.yaml"


def test_birds_reproduces_the_notebook():
    cfg = load_experiment(BIRDS)
    assert (cfg.class_id, cfg.images, cfg.max_image_mb, cfg.label_attribute) == ("/m/015p6", 2500, 6, "category")
    assert cfg.skip_images == ["251d4c429f6f9c39", "065ad49f98157c8d"]
    assert (cfg.workers_per_object, cfg.max_concurrent_tasks, cfg.task_time_limit_seconds) == (3, 200, 300)
    assert cfg.workforce.kind == "public" and str(cfg.workforce.price_usd) == "0.036"
    assert cfg.auto_labeling


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ("images: -3", "images"),
        ("bucket: Not_A_Bucket", "bucket"),
        ("role_arn: nope", "role_arn"),
        ("class_id: bird", "class_id"),
        ("label_attribute: category-metadata", "label_attribute"),
        ("workers_per_object: 12", "workers_per_object"),
        ("surprise: 1", "surprise"),
    ],
)
def test_bad_field_is_named_with_the_file(tmp_path, patch, field):
    key = patch.split(":")[0]
    text = "\n".join(ln for ln in BIRDS.read_text().splitlines() if not ln.startswith(f"{key}:")) + f"\n{patch}\n"
    path = tmp_path / "birds.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_experiment(path)
    assert str(path) in str(err.value) and f"'{field}" in str(err.value)


def test_name_must_match_the_file(tmp_path):
    path = tmp_path / "other.yaml"
    shutil.copy(BIRDS, path)
    with pytest.raises(ConfigError, match="named 'other'"):
        load_experiment(path)


def test_params_override_and_are_revalidated():
    cfg = load_experiment(BIRDS)
    changed = with_params(cfg, {"images": 40, "auto_labeling": False, "bucket": "other-bucket", "price_usd": "0.012"})
    assert (changed.images, changed.bucket, str(changed.workforce.price_usd)) == (40, "other-bucket", "0.012")
    with pytest.raises(ConfigError, match="images"):
        with_params(cfg, {"images": 0})
    with pytest.raises(ConfigError, match="workteam_arn"):
        with_params(cfg, {"workforce_kind": "private"})


def test_an_experiment_that_cannot_train_iteration_1s_model_is_refused():
    cfg = load_experiment(BIRDS)
    # 300 images: iteration 1 would get 150 objects, too few for auto-labeling, so iteration 2 would have no model.
    with pytest.raises(ConfigError, match=r"param '\(root\)'.*images=300 gives iteration 1 150 objects.*2500"):
        with_params(cfg, {"images": 300})
    assert with_params(cfg, {"images": 2500}).images == 2500
    assert with_params(cfg, {"images": 300, "auto_labeling": False}).images == 300  # no model needed


def test_workforce_params_empty_keeps_the_config_and_bad_values_are_named():
    cfg = load_experiment(BIRDS)
    assert with_params(cfg, {"price_usd": "", "workforce_kind": "", "workteam_arn": ""}).workforce == cfg.workforce
    assert with_params(cfg, {"price_usd": None}).workforce == cfg.workforce
    with pytest.raises(ConfigError, match="price_usd"):
        with_params(cfg, {"price_usd": "-0.5"})
    private = "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/birders"
    team = with_params(cfg, {"workforce_kind": "private", "workteam_arn": private})
    assert team.workforce.kind == "private" and team.workforce.workteam_arn == private
    with pytest.raises(ConfigError, match="price_usd"):  # back to public: a price must come from somewhere
        with_params(team, {"workforce_kind": "public"})


def test_template_escapes_what_comes_from_config():
    html = bounding_box_template('<script>alert("x")</script>', b"\x89PNG")
    assert "<script>alert" not in html and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert "{{ task.input.taskObject | grant_read_access }}" in html
    assert "data:image/png;base64," in html


def test_manifest_round_trip_and_labels():
    text = input_manifest(["s3://b/a.jpg", "s3://b/c.jpg"])
    assert [ln["source-ref"] for ln in read_manifest(iter(text.encode().splitlines(keepends=True)))] == [
        "s3://b/a.jpg",
        "s3://b/c.jpg",
    ]
    assert class_labels(["Bird"]) == '{"labels": [{"label": "Bird"}]}'
    with pytest.raises(ValueError, match="line 2"):
        list(read_manifest(iter([b'{"source-ref": "x"}\n', b"{oops\n"])))


def test_bad_experiment_is_an_import_error_and_the_good_ones_still_load(tmp_path):
    include = tmp_path / "include" / "experiments"
    include.mkdir(parents=True)
    shutil.copy(BIRDS, include / "birds.yaml")
    (include / "broken.yaml").write_text(BIRDS.read_text().replace("name: birds", "name: broken") + "images: many\n")
    result = parse_dags(REPO / "dags", tmp_path / "include")
    assert "labeling_experiment_birds" in result["dags"]
    assert "labeling_experiment_broken" not in result["dags"]
    (message,) = result["errors"].values()
    assert "broken.yaml" in message and "field 'images'" in message
