"""What an operator does in the Airflow UI, end to end on `make stack` (issue #14 items 2-4), in headless Chromium.

The tests run in file order on one stack and share its runs (each scenario costs a DAG run, so few runs serve many):
- R1, `labeling_experiment_birds` from the trigger form with the image count changed: iterations 1 and 3 deferred
  together (their jobs overlap), the triggerer stopped and started under them (both waits resume, no new job),
  iteration 2 started after iteration 1 and from its model, then the extra links and the report page.
- N1/N2, `nightly_labeling_birds` for two dates: the Celery worker stopped while a labeling task creates its job
  and started again (one job), the first night's labeling task cleared from the UI while it waits (it reattaches),
  and the second night reading the chain only after the first night published.
- R2, a second experiment run: a job made to fail through the emulator's faults, its task cleared from the UI
  (it reattaches to the failed job: no new job), and a deferred labeling task marked failed (its job stops).
- Security: the API wants a login; the AWS secret key is in no log and on no page shown.

A 40-bird mirror keeps the stack quick; below Ground Truth's 1,250 objects a job trains no model, so the runs turn
auto-labeling off and iteration 2's "model" is iteration 1's (absent) final model: the chaining of a real model is
covered by tests/emulator/test_seed_experiment.py and the nightly tests.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from urllib.parse import quote, unquote

import pytest

from groundtruth.requests import labeling_job_name
from scripts.airflow_processes import poll
from tests.e2e.conftest import call, stackpy

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

EXPERIMENT = "labeling_experiment_birds"
NIGHTLY = "nightly_labeling_birds"
IMAGES = 40  # the whole mirror: 20 per half
NIGHTS = ("2026-01-01", "2026-01-02")  # shard 0 (the mirror's 40 birds) and shard 1 (empty: skipped)
TERMINAL = {"success", "failed", "upstream_failed", "skipped", "removed"}

# What the suite shares between its steps (runs, job names, what the UI showed).
seen: dict = {}


def run_url(stack, dag_id: str, run_id: str, task_id: str | None = None, tab: str = "") -> str:
    url = f"{stack.api}/dags/{dag_id}/runs/{quote(run_id, safe='')}"
    return url + (f"/tasks/{task_id}" + (f"/{tab}" if tab else "") if task_id else "")


def job_name(run_id: str, iteration: int) -> str:
    return labeling_job_name(EXPERIMENT, run_id, f"label_iteration_{iteration}", iteration)


def jobs_named(sagemaker, fragment: str) -> list[dict]:
    """Every labeling job whose name contains `fragment` (a task's job and any later attempt `-a<N>`)."""
    pages = sagemaker.get_paginator("list_labeling_jobs").paginate(NameContains=fragment)
    return [job for page in pages for job in page["LabelingJobSummaryList"]]


def describe(sagemaker, name: str) -> dict:
    return sagemaker.describe_labeling_job(LabelingJobName=name)


def wait_state(api, dag_id: str, run_id: str, task_id: str, states: set[str], deadline: float = 240) -> str:
    return poll(
        f"{dag_id} {run_id} {task_id} to be {'/'.join(sorted(states))}",
        lambda: (s := api.state(dag_id, run_id, task_id)) in states and s,
        deadline=deadline,
    )


def wait_run(api, dag_id: str, run_id: str, deadline: float = 300) -> str:
    return poll(
        f"run {dag_id} {run_id} to finish",
        lambda: (s := api.run(dag_id, run_id)["state"]) in ("success", "failed") and s,
        deadline=deadline,
        interval=1,
    )


def log_text(api, dag_id: str, run_id: str, task_id: str, try_number: int) -> str:
    path = f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}/logs/{try_number}"
    body = api.get(path + "?full_content=true")
    content = body.get("content") if isinstance(body, dict) else body
    return json.dumps(content) if not isinstance(content, str) else content


def open_task(page, stack, dag_id: str, run_id: str, task_id: str, tab: str = "") -> None:
    page.goto(run_url(stack, dag_id, run_id, task_id, tab))
    page.get_by_text(task_id).first.wait_for()


def confirm_dialog(page, title: str, task_id: str) -> str:
    """Confirm the open Clear / Mark-as dialog once it lists the affected tasks; returns the dialog's text."""
    dialog = page.get_by_role("dialog")
    dialog.get_by_text(title).wait_for()
    dialog.get_by_role("row").filter(has_text=task_id).first.wait_for()  # the affected tasks are listed
    text = dialog.inner_text()
    dialog.get_by_role("button", name="Confirm").click()
    dialog.wait_for(state="hidden")
    return text


def clear_in_ui(page, stack, dag_id: str, run_id: str, task_id: str) -> str:
    """The task page's Clear action (with its downstream tasks, the dialog's default); returns the dialog's text."""
    open_task(page, stack, dag_id, run_id, task_id)
    page.get_by_role("button", name="Press shift+c to clear").click()
    return confirm_dialog(page, f"Clear Task Instance: {task_id}", task_id)


def mark_failed_in_ui(page, stack, dag_id: str, run_id: str, task_id: str) -> str:
    open_task(page, stack, dag_id, run_id, task_id)
    page.get_by_role("button", name="Mark Task Instance as...").click()
    page.get_by_role("menuitem", name="Failed").click()
    return confirm_dialog(page, f"Mark Task Instance as failed: {task_id}", task_id)


def trigger_form(page, stack, dag_id: str) -> None:
    page.goto(f"{stack.api}/dags/{dag_id}")
    page.get_by_role("button", name="Trigger Dag").click()
    page.get_by_role("dialog").get_by_text(f"Trigger Dag - {dag_id}").wait_for()


def submit_trigger(page, dag_id: str) -> str:
    """Press the form's Trigger; the UI moves to the new run's page, whose URL names the run."""
    page.get_by_role("dialog").get_by_role("button", name="Trigger", exact=True).click()
    page.wait_for_url(re.compile(rf"/dags/{dag_id}/runs/[^/]+$"))
    return unquote(page.url.rsplit("/runs/", 1)[1])


# --- the stack itself (was tests/test_stack.py's end-to-end test) -------------------------------------------------


def test_stack_is_healthy_guarded_and_parses_the_dags(stack, api):
    assert set(stack.state["procs"]) == {"postgres", "redis", "emulator", *stackpy.AIRFLOW}
    assert stack.api in stack.up.stdout and stack.emulator in stack.up.stdout
    assert "simple_auth_manager_passwords" in stack.up.stdout
    status, health = call(f"{stack.api}/api/v2/monitor/health")
    assert status == 200, status
    for component in ("metadatabase", "scheduler", "triggerer", "dag_processor"):
        assert health[component]["status"] == "healthy", health
    assert call(f"{stack.emulator}/_emulator/health")[0] == 200
    # item 4: the API refuses a call without a login ...
    assert call(f"{stack.api}/api/v2/dags")[0] == 401
    assert call(f"{stack.api}/api/v2/dags/{EXPERIMENT}/dagRuns", data={"logical_date": None})[0] == 401
    # ... which the printed passwords file gives (the `api` fixture logged in with it)
    dag = poll(
        "the dag-processor to parse the project's DAGs",
        lambda: (r := api.call("GET", f"/api/v2/dags/{EXPERIMENT}"))[0] == 200 and r[1],
        deadline=120,
        interval=1,
    )
    assert dag["dag_id"] == EXPERIMENT and dag["is_paused"], dag
    assert api.get(f"/api/v2/dags/{NIGHTLY}")["is_paused"]
    assert api.get("/api/v2/importErrors")["total_entries"] == 0
    # `up` again on a healthy stack changes nothing
    again = stack.run("up", timeout=150)
    assert again.returncode == 0 and "already up and healthy" in again.stdout, again.stdout + again.stderr
    assert json.loads((stack.dir / "state.json").read_text())["procs"] == stack.state["procs"]


# --- R1: trigger form, parallel iterations, triggerer restart, extra links ----------------------------------------


def test_a_log_in_and_trigger_the_experiment_with_a_changed_param(stack, api, page, shot):
    page.goto(stack.api + "/")
    page.wait_for_url(re.compile(r"/auth/login"))
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(stack.password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Dags").first.wait_for()

    trigger_form(page, stack, EXPERIMENT)
    dialog = page.get_by_role("dialog")
    assert dialog.get_by_text(f"Unpause {EXPERIMENT} on trigger").is_visible()
    images = dialog.locator('input[name="element_images"]')
    assert images.input_value() == "2500"  # the YAML's default
    images.fill(str(IMAGES))
    # below 2 x 1,250 images no job trains a model, and the config refuses auto-labeling without one
    auto = dialog.locator('input[name="element_auto_labeling"]')
    assert auto.is_checked()
    dialog.locator('label:has(input[name="element_auto_labeling"])').click()
    assert not auto.is_checked()
    images.scroll_into_view_if_needed()
    shot(page, "01-trigger-form")
    run_id = submit_trigger(page, EXPERIMENT)
    seen["r1"] = run_id

    run = api.run(EXPERIMENT, run_id)
    assert run["conf"]["images"] == IMAGES and run["conf"]["auto_labeling"] is False, run["conf"]
    assert run["run_type"] == "manual"
    # the run uses it: the selection step picked exactly that many images
    wait_state(api, EXPERIMENT, run_id, "select_images", {"success"}, deadline=180)
    assert api.xcom(EXPERIMENT, run_id, "select_images")["images"] == IMAGES


def test_b_iterations_1_and_3_wait_together_and_survive_a_triggerer_restart(stack, api, page, sagemaker, shot):
    run_id = seen["r1"]

    def both_deferred():
        return all(api.state(EXPERIMENT, run_id, f"label_iteration_{i}") == "deferred" for i in (1, 3))

    poll("label_iteration_1 and label_iteration_3 deferred at the same time", both_deferred, deadline=240)
    page.goto(run_url(stack, EXPERIMENT, run_id))
    rows = page.get_by_role("row")
    for task in ("label_iteration_1", "label_iteration_3"):
        rows.filter(has_text=task).filter(has_text="Deferred").first.wait_for()
    shot(page, "02-grid-iterations-1-and-3-deferred")
    names = {i: job_name(run_id, i) for i in (1, 3)}
    for name in names.values():
        assert describe(sagemaker, name)["LabelingJobStatus"] in ("Initializing", "InProgress")

    # item 3: the triggerer stops while both waits are deferred, and starts again
    stopped = stack.run("stop", "triggerer")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert "triggerer" not in json.loads((stack.dir / "state.json").read_text())["procs"]
    assert {api.state(EXPERIMENT, run_id, f"label_iteration_{i}") for i in (1, 3)} <= {"deferred", "scheduled"}
    started = stack.run("start", "triggerer")
    assert started.returncode == 0, started.stdout + started.stderr
    for i in (1, 3):
        assert wait_state(api, EXPERIMENT, run_id, f"label_iteration_{i}", TERMINAL, deadline=240) == "success"
        assert [j["LabelingJobName"] for j in jobs_named(sagemaker, names[i])] == [names[i]]  # no new job
        assert api.ti(EXPERIMENT, run_id, f"label_iteration_{i}")["try_number"] == 1

    # their InProgress intervals overlap (each job's clock runs from its creation on)
    one, three = describe(sagemaker, names[1]), describe(sagemaker, names[3])
    assert one["CreationTime"] < three["LastModifiedTime"] and three["CreationTime"] < one["LastModifiedTime"]
    assert one["LabelingJobStatus"] == three["LabelingJobStatus"] == "Completed"

    # iteration 2 starts after iteration 1, from its final model
    assert wait_state(api, EXPERIMENT, run_id, "label_iteration_2", TERMINAL, deadline=240) == "success"
    two = describe(sagemaker, job_name(run_id, 2))
    model = (one.get("LabelingJobOutput") or {}).get("FinalActiveLearningModelArn")
    assert (two.get("LabelingJobAlgorithmsConfig") or {}).get("InitialActiveLearningModelArn") == model
    first = api.ti(EXPERIMENT, run_id, "label_iteration_1")
    assert api.ti(EXPERIMENT, run_id, "label_iteration_2")["start_date"] > first["end_date"]
    assert two["CreationTime"] >= one["CreationTime"]


def test_e_extra_links_and_the_report_page(stack, api, page, s3, shot):
    run_id = seen["r1"]
    assert wait_run(api, EXPERIMENT, run_id) == "success"
    job = job_name(run_id, 1)
    open_task(page, stack, EXPERIMENT, run_id, "label_iteration_1", "details")
    console = page.get_by_role("link", name="Labeling Job", exact=True)
    output = page.get_by_role("link", name="Labeling Job Output")
    console.wait_for()
    console_href, output_href = console.get_attribute("href"), output.get_attribute("href")
    assert job in console_href and "sagemaker/groundtruth" in console_href, console_href
    assert f"{job}/" in output_href and "s3/buckets/gt-experiments-birds" in output_href, output_href
    shot(page, "03-extra-links")
    for link, expected in ((console, f"#/labeling-jobs/details/{job}"), (output, quote(f"{job}/", safe="/"))):
        with page.context.expect_page() as opened:
            link.click()
        tab = opened.value
        tab.wait_for_load_state()
        assert expected in tab.url, tab.url
        tab.close()

    open_task(page, stack, EXPERIMENT, run_id, "render_report", "details")
    report = page.get_by_role("link", name="Experiment Report")
    report.wait_for()
    href = seen["report_href"] = report.get_attribute("href")
    # a local endpoint has no console: the link is a presigned URL, so a browser without AWS credentials opens it
    path, _, query = href.partition("?")
    assert path.startswith(f"{stack.emulator}/gt-experiments-birds/") and path.endswith("/report/report.html"), href
    assert "X-Amz-Signature=" in query, href
    with page.context.expect_page() as opened:
        report.click()
    tab = opened.value
    tab.wait_for_load_state()
    for key in ("iteration-1", "iteration-2", "iteration-3"):
        tab.get_by_text(key).first.wait_for()
    assert tab.locator("table").count() >= 2 and tab.locator('img[src^="data:image/png"]').count() >= 1
    shot(tab, "04-report-page", full_page=True)
    tab.close()


# --- R2 starts now (it runs beside the nightly runs): one of its jobs is made to fail -----------------------------


def test_d_a_second_run_one_job_failing_one_marked_failed_in_the_ui(stack, api, page, sagemaker, emulator_admin, shot):
    status, run = api.call(
        "POST",
        f"/api/v2/dags/{EXPERIMENT}/dagRuns",
        {"logical_date": None, "conf": {"images": IMAGES, "auto_labeling": False}},
    )
    assert status == 200, run
    run_id = seen["r2"] = run["dag_run_id"]
    seen["fault"] = {"fail_job_name_contains": job_name(run_id, 3), "fail_job_at": "human"}
    emulator_admin.faults(**seen["fault"])
    waiting = job_name(run_id, 1)

    # d: label_iteration_1 waits in the triggerer; marked failed in the UI, its job stops
    wait_state(api, EXPERIMENT, run_id, "label_iteration_1", {"deferred"})
    assert describe(sagemaker, waiting)["LabelingJobStatus"] in ("Initializing", "InProgress")
    text = mark_failed_in_ui(page, stack, EXPERIMENT, run_id, "label_iteration_1")
    assert "Deferred" in text
    poll(f"job {waiting} to stop", lambda: describe(sagemaker, waiting)["LabelingJobStatus"] == "Stopped", 90)
    assert api.state(EXPERIMENT, run_id, "label_iteration_1") == "failed"
    # Two stoppers race here (docs/ARCHITECTURE.md, "No job outlives its run's tasks"): the trigger's on_kill, when
    # the triggerer sees the mark first, or the run's stop_orphaned_jobs teardown, which runs as soon as iteration 3
    # has failed too (iteration 2 can no longer start). The one that stopped the job says so in its task's log.
    assert wait_state(api, EXPERIMENT, run_id, "stop_orphaned_jobs", TERMINAL, deadline=300) == "success"
    if waiting in api.xcom(EXPERIMENT, run_id, "stop_orphaned_jobs"):
        open_task(page, stack, EXPERIMENT, run_id, "stop_orphaned_jobs")
        page.get_by_text(f"Labeling job {waiting} of task label_iteration_1 is still running").first.wait_for()
    else:
        open_task(page, stack, EXPERIMENT, run_id, "label_iteration_1")
        page.get_by_text(f"stopping labeling job {waiting}").first.wait_for()
    shot(page, "06-stopped-job")


# --- N1/N2: worker restart mid-task, clear while waiting, the chain's order ---------------------------------------


def test_f_two_nights_a_worker_restart_and_a_clear_keep_one_job_and_the_chain(
    stack, api, page, sagemaker, emulator_admin, s3, shot
):
    # a slow CreateLabelingJob keeps the labeling task on the worker while the worker is stopped
    emulator_admin.faults(**seen["fault"], latency_ms=6000, only=["SageMaker.CreateLabelingJob"])
    # two nights by logical date through the API (the trigger form is exercised above; its date picker is not
    # what this step is about)
    runs = []
    for night in NIGHTS:
        status, run = api.call("POST", f"/api/v2/dags/{NIGHTLY}/dagRuns", {"logical_date": f"{night}T03:00:00Z"})
        assert status == 200, run
        runs.append(run["dag_run_id"])
    first, second = seen["nights"] = runs
    assert api.call("PATCH", f"/api/v2/dags/{NIGHTLY}", {"is_paused": False})[0] == 200
    # Unpausing also schedules today's night (catchup off), a later date whose read_latest_model waits for these
    # two while it holds the one active run they need (max_active_runs 1): README's advice, mark it failed.
    today = poll(
        "the unpause's scheduled run",
        lambda: [r for r in api.runs(NIGHTLY) if r["run_type"] == "scheduled"],
        deadline=60,
    )
    for run in today:
        path = f"/api/v2/dags/{NIGHTLY}/dagRuns/{quote(run['dag_run_id'], safe='')}"
        assert api.call("PATCH", path, {"state": "failed"})[0] == 200

    # item 3: the worker stops while label_shard of the first night is creating its job, and starts again
    try:
        was = wait_state(api, NIGHTLY, first, "label_shard", {"running", "deferred", *TERMINAL}, deadline=240)
        stopped = stack.run("stop", "worker")
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    finally:
        emulator_admin.faults(**seen["fault"])
        started = stack.run("start", "worker")
    assert started.returncode == 0, started.stdout + started.stderr
    assert wait_state(api, NIGHTLY, first, "label_shard", {"deferred", *TERMINAL}) == "deferred", was
    night_jobs = poll("the first night's job", lambda: jobs_named(sagemaker, "nightly-labeling-birds"))
    assert len(night_jobs) == 1, night_jobs
    job = night_jobs[0]["LabelingJobName"]

    # the first night's labeling task cleared from the UI while it waits: the new try reattaches
    text = clear_in_ui(page, stack, NIGHTLY, first, "label_shard")
    assert "publish_model" in text and "publish_outputs" in text  # downstream cleared with it
    poll("the cleared task to run again", lambda: api.ti(NIGHTLY, first, "label_shard")["try_number"] == 2)
    shot(page, "05-cleared-task")
    assert wait_state(api, NIGHTLY, first, "label_shard", TERMINAL, deadline=240) == "success"
    assert [j["LabelingJobName"] for j in jobs_named(sagemaker, "nightly-labeling-birds")] == [job]
    assert "Reattaching to labeling job" in log_text(api, NIGHTLY, first, "label_shard", 2)

    # the chain holds: the second night reads the latest model only after the first night's model step ended
    assert wait_run(api, NIGHTLY, first) == "success"
    wait_state(api, NIGHTLY, second, "read_latest_model", TERMINAL)
    published = api.ti(NIGHTLY, first, "publish_model")
    assert api.ti(NIGHTLY, second, "read_latest_model")["start_date"] >= published["end_date"]
    assert published["state"] == "skipped"  # a job below 1,250 objects makes no model: the latest stays
    assert wait_run(api, NIGHTLY, second) == "success"
    assert api.state(NIGHTLY, second, "select_shard") == "skipped"  # the 40-bird mirror has no shard 1
    assert api.xcom(NIGHTLY, second, "read_latest_model").get("model_arn") is None
    assert len(jobs_named(sagemaker, "nightly-labeling-birds")) == 1


# --- R2: fault + Clear, mark failed ---------------------------------------------------------------------------------


def test_c_clear_reattaches_to_the_job_the_fault_failed(stack, api, page, sagemaker, emulator_admin, shot):
    run_id = seen["r2"]
    failing = job_name(run_id, 3)

    # c: the fault failed iteration 3's job, so its task failed; Clear reattaches to that job instead of a new one
    assert wait_state(api, EXPERIMENT, run_id, "label_iteration_3", TERMINAL) == "failed"
    assert describe(sagemaker, failing)["LabelingJobStatus"] == "Failed"
    before = [j["LabelingJobName"] for j in jobs_named(sagemaker, failing)]
    assert before == [failing]
    emulator_admin.faults()  # faults off: whatever happens next is the operator's doing
    clear_in_ui(page, stack, EXPERIMENT, run_id, "label_iteration_3")
    poll("the cleared task to run again", lambda: api.ti(EXPERIMENT, run_id, "label_iteration_3")["try_number"] == 2)
    assert wait_state(api, EXPERIMENT, run_id, "label_iteration_3", TERMINAL) == "failed"
    assert [j["LabelingJobName"] for j in jobs_named(sagemaker, failing)] == before  # reattached: no new job
    log = log_text(api, EXPERIMENT, run_id, "label_iteration_3", 2)
    assert "Reattaching to labeling job" in log and failing in log
    open_task(page, stack, EXPERIMENT, run_id, "label_iteration_3")
    page.get_by_text("Reattaching to labeling job").first.wait_for()
    shot(page, "07-cleared-failed-task-reattached")
    assert wait_run(api, EXPERIMENT, run_id) == "failed"


# --- item 4: no AWS secret in what the stack writes or the UI shows ------------------------------------------------


def test_no_aws_secret_in_logs_rendered_fields_or_xcom_pages(stack, api, page):
    secret = stack.aws_secret
    assert len(secret) >= 30
    # the connection does carry it (so not finding it below means something)
    assert quote(secret, safe="") in (stack.dir / "env").read_text()
    leaks = []
    for folder in (stack.dir / "logs", stack.dir / "airflow" / "logs"):
        for path in folder.rglob("*"):
            if path.is_file() and secret in path.read_text(errors="replace"):
                leaks.append(str(path))
    run_id = seen["r1"]
    job = job_name(run_id, 1)
    pages = {  # each page, and a text that shows it has loaded what it shows
        run_url(stack, EXPERIMENT, run_id, "label_iteration_1", "rendered_templates"): "HumanTaskConfig",
        run_url(stack, EXPERIMENT, run_id, "label_iteration_1"): f"Labeling job {job}",  # the task's log
        run_url(stack, EXPERIMENT, run_id, "label_iteration_1", "details"): "Labeling Job Output",
        f"{stack.api}/xcoms": "return_value",
    }
    for url, loaded in pages.items():
        page.goto(url)
        page.get_by_text(loaded).first.wait_for()
        if secret in page.content() or quote(secret, safe="") in page.content():
            leaks.append(url)
    for task in ("label_iteration_1", "render_report"):
        if secret in json.dumps(api.ti(EXPERIMENT, run_id, task)):  # rendered_fields included
            leaks.append(f"API task instance {task}")
    every_xcom = api.get("/api/v2/dags/~/dagRuns/~/taskInstances/~/xcomEntries?limit=1000")
    assert every_xcom["total_entries"] > 10
    if secret in json.dumps(every_xcom):
        leaks.append("API XCom entries")
    assert not leaks, f"the AWS secret key shows in: {leaks}"


# --- last: `down` leaves nothing ------------------------------------------------------------------------------------


def test_zz_down_leaves_no_process(stack):
    procs = json.loads((stack.dir / "state.json").read_text())["procs"]
    started = time.monotonic()
    down = stack.run("down", timeout=150)
    assert down.returncode == 0, down.stdout + down.stderr
    assert procs and [name for name, record in procs.items() if stackpy.is_ours(record)] == []
    assert stackpy.marked(stack.state["id"]) == set()
    assert (stack.dir / "logs" / "scheduler.log").stat().st_size > 0  # logs are kept
    print(f"stack down in {time.monotonic() - started:.0f} s; started at {datetime.now():%H:%M:%S}")
