"""
The Airflow plugin of this package: registers the labeling-job and report extra links.

In Airflow 3 the operators carry the links themselves (``operator_extra_links``); the URLs reach the UI through XCom
(see ``groundtruth.links``). Registering them here follows the documented pattern ("Define an operator extra link"),
lists them under ``airflow plugins``, and keeps them resolvable by name. The links' ``operators`` list stays empty
on purpose: a plugin link bound to an operator would replace the XCom-backed link on the API server, where the
task SDK's XCom access does not exist. ``global_operator_extra_links`` would add the buttons to every task in
every DAG, so nothing is registered there.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from groundtruth.links import ExperimentReportLink, LabelingJobConsoleLink, LabelingJobOutputLink


class GroundTruthPlugin(AirflowPlugin):
    name = "groundtruth"
    operator_extra_links = [LabelingJobConsoleLink(), LabelingJobOutputLink(), ExperimentReportLink()]
    global_operator_extra_links = []
