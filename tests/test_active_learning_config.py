"""`include/active_learning/<name>.yaml`: what a bad file or Param says, and the loop's own bounds."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from groundtruth.config import ConfigError, ScriptModel, load_active_learning, with_params
from tests.dagbag_probe import parse_dags

REPO = Path(__file__).resolve().parent.parent
NEWS = REPO / "include" / "active_learning" / "news.yaml"
CUSTOM = REPO / "include" / "active_learning" / "news_custom.yaml"


def write(tmp_path: Path, text: str, name: str = "news") -> Path:
    folder = tmp_path / "include" / "active_learning"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


def test_the_shipped_configs_follow_the_seed():
    news, custom = load_active_learning(NEWS), load_active_learning(CUSTOM)
    assert (news.bootstrap_share, news.validation_share, news.human_batch_share) == (0.2, 0.1, 0.1)
    assert news.auto_label_margin == 0.5 and news.max_rounds == 8 and news.model.kind == "blazingtext"
    assert news.model.hyperparameters["word_ngrams"] == "2" and news.model.instance_type == "ml.c5.2xlarge"
    assert isinstance(custom.model, ScriptModel) and custom.model.image.endswith("sagemaker-scikit-learn:1.2-1-cpu-py3")


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"input_manifest": "s3://gt-active-learning-news/corpus/"}, "input_manifest"),
        ({"label_categories": "https://example.com/labels.json"}, "label_categories"),
        ({"output_prefix": "s3://Bad_Bucket/runs/"}, "output_prefix"),
        ({"auto_label_margin": 1.0}, "auto_label_margin"),
        ({"human_batch_share": 0}, "human_batch_share"),
        ({"max_rounds": 7}, "(root)"),  # 20% bootstrap + 10% batches need 8
        ({"validation_share": 0.2}, "(root)"),  # nothing would be left to train on
        ({"model": {"kind": "script", "source_dir": "../x", "image": "1.dkr.ecr.a.amazonaws.com/x:1"}}, "model.script"),
    ],
)
def test_a_bad_field_is_named_with_the_file(tmp_path, patch, field):
    import yaml

    data = {**yaml.safe_load(NEWS.read_text()), **patch}
    path = write(tmp_path, yaml.safe_dump(data))
    with pytest.raises(ConfigError) as error:
        load_active_learning(path)
    assert str(path) in str(error.value) and f"field '{field}" in str(error.value)


def test_max_rounds_below_the_bound_says_how_many_are_needed(tmp_path):
    text = NEWS.read_text().replace("max_rounds: 8", "max_rounds: 7")
    with pytest.raises(ConfigError, match=r"max_rounds=7 cannot finish the loop: .* need up to 8 rounds"):
        load_active_learning(write(tmp_path, text))


def test_a_script_model_without_its_entry_point_is_refused(tmp_path):
    (tmp_path / "include" / "models" / "mine").mkdir(parents=True)
    text = CUSTOM.read_text().replace("source_dir: models/news_classifier", "source_dir: models/mine")
    with pytest.raises(ConfigError, match=r"field 'model\.source_dir': .*models/mine/train\.py does not exist"):
        load_active_learning(write(tmp_path, text, "news_custom"))


def test_params_are_revalidated_and_dated_uris_take_the_run_date():
    config = load_active_learning(NEWS)
    with pytest.raises(ConfigError, match="param 'output_prefix'"):
        with_params(config, {"output_prefix": "not-s3"})
    dated = with_params(config, {"input_manifest": "s3://gt-b/shards/dt={{ ds }}/input.manifest"})
    assert dated.dated("input_manifest", "2026-11-02") == "s3://gt-b/shards/dt=2026-11-02/input.manifest"
    with pytest.raises(ValueError, match="needs a run date"):
        dated.dated("input_manifest", None)
    assert with_params(config, {"bootstrap_share": 0.3}).bootstrap_share == 0.3


def test_check_interval_has_a_deployment_wide_override(monkeypatch):
    assert load_active_learning(NEWS).check_interval_seconds == 60
    monkeypatch.setenv("GT_CHECK_INTERVAL_SECONDS", "0.5")
    assert load_active_learning(NEWS).check_interval_seconds == 0.5


def test_a_bad_active_learning_config_is_an_import_error_and_the_good_ones_still_load(tmp_path):
    folder = tmp_path / "include" / "active_learning"
    folder.mkdir(parents=True)
    shutil.copy(NEWS, folder / "news.yaml")
    (folder / "broken.yaml").write_text(NEWS.read_text().replace("name: news", "name: broken") + "budget_usd: lots\n")
    result = parse_dags(REPO / "dags", tmp_path / "include")
    assert "active_learning_news" in result["dags"] and "active_learning_broken" not in result["dags"]
    (message,) = result["errors"].values()
    assert "broken.yaml" in message and "field 'budget_usd'" in message
