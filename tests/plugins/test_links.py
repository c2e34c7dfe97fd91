"""Console links, and the plugin that registers them."""

from __future__ import annotations

from pathlib import Path

from airflow._shared.module_loading import find_path_from_directory

from groundtruth.links import ExperimentReportLink, LabelingJobConsoleLink, LabelingJobOutputLink, job_output_location
from groundtruth.operators import CreateLabelingJobOperator, ExperimentReportOperator
from groundtruth.plugin import GroundTruthPlugin
from groundtruth.sensors import LabelingJobSensor

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"


def test_console_link_is_region_aware():
    url = LabelingJobConsoleLink().format_link(region_name="eu-west-1", aws_domain="aws.amazon.com", job_name="birds-1")
    assert url == (
        "https://eu-west-1.console.aws.amazon.com/sagemaker/groundtruth?region=eu-west-1#/labeling-jobs/details/birds-1"
    )


def test_console_link_in_china_uses_the_china_console():
    url = LabelingJobConsoleLink().format_link(region_name="cn-north-1", aws_domain="amazonaws.cn", job_name="j")
    assert url.startswith("https://cn-north-1.console.amazonaws.cn/sagemaker/groundtruth?region=cn-north-1")


def test_output_link_opens_the_job_folder():
    bucket, prefix = job_output_location("s3://my-bucket/experiments/run 1/output/", "birds-1")
    assert (bucket, prefix) == ("my-bucket", "experiments/run 1/output/birds-1/")
    url = LabelingJobOutputLink().format_link(region_name="us-west-2", bucket=bucket, prefix=prefix)
    assert url == (
        "https://console.aws.amazon.com/s3/buckets/my-bucket?region=us-west-2&prefix=experiments/run%201/output/birds-1/"
    )
    assert job_output_location("s3://b", "j") == ("b", "j/")


def test_links_without_parameters_are_empty():
    assert LabelingJobConsoleLink().format_link() == ""
    assert LabelingJobOutputLink().format_link(region_name="us-east-1") == ""


def test_operators_carry_the_links_and_the_plugin_registers_them():
    registered = {link.name for link in GroundTruthPlugin.operator_extra_links}
    names = {"Labeling Job", "Labeling Job Output"}
    assert registered == names | {"Experiment Report"}
    assert {link.name for link in CreateLabelingJobOperator.operator_extra_links} == names
    assert {link.name for link in LabelingJobSensor.operator_extra_links} == names
    assert {link.name for link in ExperimentReportOperator.operator_extra_links} == {"Experiment Report"}
    assert GroundTruthPlugin.global_operator_extra_links == []
    # Not bound to operators: binding would replace the XCom-backed links on the API server.
    assert all(not link.operators for link in GroundTruthPlugin.operator_extra_links)


def test_airflow_loads_only_plugin_py_from_the_package():
    """Airflow imports plugin files as top-level modules by file name; requests.py must not become `requests`."""
    found = [Path(p).relative_to(PLUGINS).as_posix() for p in find_path_from_directory(str(PLUGINS), ".airflowignore")]
    assert "groundtruth/plugin.py" in found
    assert not [p for p in found if p.startswith("groundtruth/") and p != "groundtruth/plugin.py"]


def test_report_link_opens_the_object_in_the_console_or_on_a_local_endpoint():
    link = ExperimentReportLink()
    on_aws = link.format_link(
        region_name="eu-west-1", aws_domain="aws.amazon.com", bucket="b", object_key="p/r/report.html"
    )
    assert on_aws == "https://console.aws.amazon.com/s3/object/b?region=eu-west-1&prefix=p/r/report.html"
    presigned = "http://127.0.0.1:4566/b/p/report.html?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=abc"
    local = link.format_link(region_name="us-east-1", bucket="b", object_key="p/report.html", presigned_url=presigned)
    assert local == presigned
    assert link.format_link(region_name="us-east-1", bucket="", object_key="x") == ""
