"""What the app shows about jobs: the ETA (snapshots counted, smoothed), resume explanations, the job
table's filters and durations, and the Erase form filled from a picked job."""

import gradio as gr
import pandas as pd
import pytest

from erasure.trajectory import progress
from jobs import JobManager
from jobs.store import JobInfo
from ui import erase_tab, jobs_tab, live, state


def _events(step_s: float, snap_s: float, steps: int, total: int, every: int, first: int = 0) -> list[dict]:
    """Events of a run that takes step_s per step and snap_s per snapshot (every `every` steps and at step 1)."""
    t, out = 0.0, [{"kind": "start", "step": first, "total": total, "elapsed_s": 0.0}]
    for s in range(first + 1, first + steps + 1):
        t += step_s
        out.append({"kind": "step", "step": s, "total": total, "elapsed_s": t})
        if s % every == 0 or s == 1:
            t += snap_s
            out.append({"kind": "snapshot", "step": s, "total": total, "elapsed_s": t})
    return out


def test_the_eta_counts_the_remaining_snapshots_and_does_not_climb():
    # 1 s per step, 30 s per snapshot every 25 steps, 120 steps: the old estimate (remaining x elapsed /
    # done) climbed as snapshots accumulated; the new one is what is actually left
    etas = [progress(_events(1.0, 30.0, n, 120, 25), 25)["eta_s"] for n in (10, 40, 80)]
    left = [(120 - n) + 30 * sum(1 for s in range(n + 1, 121) if s % 25 == 0) for n in (10, 40, 80)]
    assert etas == pytest.approx(left)
    assert etas == sorted(etas, reverse=True)  # it only goes down
    slow = _events(1.0, 30.0, 40, 120, 25)
    for e in slow[21:]:  # one step 50 s slower (a checkpoint): the median step time does not move
        e["elapsed_s"] += 50.0
    assert progress(slow, 25)["eta_s"] == pytest.approx(etas[1])


def test_progress_phases_and_the_resume_point():
    p = progress(_events(1.0, 0.0, 12, 12, 100), 0)
    assert p["phase"] == "finishing" and p["eta_s"] == 0.0  # every step done, the result not yet saved
    done = progress(_events(1.0, 0.0, 12, 12, 100) + [{"kind": "done", "step": 12, "total": 12, "elapsed_s": 13}])
    assert done["phase"] == "done" and done["resumed_at"] is None
    resumed = _events(1.0, 0.0, 12, 20, 100) + _events(1.0, 0.0, 3, 20, 100, first=12)
    assert progress(resumed)["resumed_at"] == 12 and progress(resumed)["step"] == 15


def test_a_picture_being_drawn_is_its_own_phase_and_elapsed_time_ticks_between_state_writes():
    events = _events(1.0, 30.0, 25, 100, 25)[:-1]  # step 25's event, its snapshot not yet drawn
    assert progress(events, 25)["phase"] == "picture" and progress(events + [events[-1] | {"kind": "snapshot"}],
                                                                   25)["phase"] == "training"
    running = JobInfo("erase-20261203-090000-000", "erase", "t", "running", 1, 4, "", "", "/x", 10.0, "", 1000.0)
    assert running.elapsed(now=1042.0) == 52.0  # 10 s at the last write, 42 s since: it keeps ticking
    assert JobInfo(*running.__dict__.values()).elapsed(now=1042.0) == 52.0
    done = JobInfo("erase-20261203-090000-000", "erase", "t", "done", 4, 4, "", "", "/x", 10.0, "", 1000.0)
    assert done.elapsed(now=5000.0) == 10.0  # a finished job's time stands still


def test_the_time_left_says_when_pictures_are_not_timed_yet():
    before = progress([e for e in _events(1.0, 30.0, 10, 100, 25) if e["kind"] != "snapshot"], 25)  # none drawn yet
    assert before["untimed_pictures"] == 4 and "4 trajectory pictures not yet timed" in erase_tab._eta_text(before)
    after = progress(_events(1.0, 30.0, 30, 100, 25), 25)  # step 1's and 25's pictures were timed
    assert after["untimed_pictures"] == 0 and "not yet timed" not in erase_tab._eta_text(after)


def test_the_erase_status_names_what_a_running_job_is_doing():
    assert "preparing: loading the model" in erase_tab._eta_text(progress([]))
    assert "drawing the trajectory picture of step 25" in erase_tab._eta_text(progress(_events(1.0, 30.0, 25, 100, 25)[:-1], 25))
    judging = JobInfo("erase-20261203-090000-000", "erase", "t", "running", 4, 4,
                      "judging every concept of the world: 40 %", "", "/x", 10.0, "judging", 1000.0)
    assert erase_tab._eta_text(progress(_events(1.0, 0.0, 4, 4, 100)), judging).endswith("world: 40 %")


def _info(id_, kind, state_, run_s=0.0):
    return JobInfo(id_, kind, f"{kind} job", state_, 1, 4, "", "2026-12-03 09:00:00", "/srv/x", run_s)


def test_the_job_table_filters_by_kind_and_state_and_shows_durations():
    jobs = [_info("erase-20261203-090002-000", "erase", "done", 185.0),
            _info("spectrum-20261203-090001-000", "spectrum", "running", 7.0),
            _info("erase-20261203-090000-000", "erase", "failed")]
    assert list(jobs_tab.table(jobs)["id"]) == [j.id for j in jobs]
    assert list(jobs_tab.table(jobs, "erase")["state"]) == ["done", "failed"]
    assert list(jobs_tab.table(jobs, "all", "running")["kind"]) == ["spectrum"]
    assert jobs_tab.table(jobs, "spectrum", "done").empty and list(jobs_tab.table([]).columns) == jobs_tab.COLUMNS
    assert list(jobs_tab.table(jobs)["duration"]) == ["3 min 05 s", "7 s", ""]
    with pytest.raises(ValueError, match="Kind must be one of all, erase, spectrum"):
        jobs_tab.table(jobs, "training")


@pytest.fixture()
def app_jobs(tmp_path, monkeypatch):
    manager = JobManager(tmp_path / "jobs")
    monkeypatch.setattr(state, "_manager", manager)
    return manager


def test_a_picked_job_fills_the_erase_form_and_opens_in_its_tab(app_jobs):
    params = {"model": "embedded", "method": "esd", "targets": ["star", "heart"], "presets": "object,fast",
              "overrides": {"steps": 3, "lr": 2e-4, "param_group": "xattn", "snapshot_every": 0}}
    job = app_jobs.submit("erase", params)
    assert erase_tab.erase_settings(job) == ("esd", "star, heart", "object", "fast", "xattn", 3, 2e-4, 0)
    assert jobs_tab.job_open(job)[0] in ("erase", "results")
    app_jobs.wait(job, 300)
    tab, erase, results, spectrum = jobs_tab.job_open(job)
    assert tab == "results" and results == job  # a finished erasure lands on its Results view
    from jobs.tasks import check_spectrum

    spectrum = check_spectrum({"model": "embedded", "targets": ["star"], "config": {"vocab": "world", "k": 1},
                               "run": job}, app_jobs.root)
    # named by the erasure's title, not its id: typing the erase job's id in a picker matches that job alone
    assert job not in spectrum.title and app_jobs.info(job).title in spectrum.title
    assert "last checkpoint, at step 2;" in jobs_tab.resume_point(job)  # checkpoint_every 1: steps 1, 2 (not 3)


def test_the_selection_survives_a_reload_only_for_jobs_that_still_exist(app_jobs):
    job = app_jobs.submit("erase", {"model": "embedded", "method": "esd", "targets": ["star"],
                                    "presets": "object,fast", "overrides": {"steps": 2}})
    saved = live.remember(live.remember({}, job, which="erase"), "erase-20000101-000000-000", which="results")
    erase, results, spectrum, tab = live.restore(saved)
    assert erase == job and not isinstance(results, str) and not isinstance(spectrum, str)  # skipped
    assert tab == gr.skip()  # the tab stays as it is
    app_jobs.wait(job, 300)


def test_a_first_visit_is_shown_the_first_shipped_example(tmp_path, monkeypatch):
    """jobs.examples.install copies the shipped examples into a jobs folder; a Results picker with nothing to
    restore gets the first one (ui.live.restore), which everyone may view and nobody may change."""
    from jobs import examples

    shipped = examples.shipped()
    assert len(shipped) >= 4 and examples.install(tmp_path / "jobs") == [e["id"] for e in shipped]
    manager = JobManager(tmp_path / "jobs", workers=0)
    monkeypatch.setattr(state, "_manager", manager)
    erase, results, spectrum, _ = live.restore({})
    assert results == shipped[0]["id"] and manager.info(results).state == "done"
    with pytest.raises(ValueError, match="shared example"):
        manager.delete(results, "a-visitor")
    assert not list((tmp_path / "jobs").glob(".*.part"))  # copies are renamed into place whole
    spectra = [j for j in manager.jobs("spectrum") if manager.folder(j.id).record["params"]["run"] == results]
    assert spectra and state.run_spectrum(results, done=True) == spectra[0].id  # its spectrum ships with it


def test_pick_row_takes_the_clicked_rows_id():
    class Click:
        index = (1, 3)

    rows = pd.DataFrame({"id": ["a", "b"], "kind": ["erase", "spectrum"]})
    assert jobs_tab.pick_row(rows, Click()) == "b"


def test_generate_names_the_words_the_embedded_model_never_saw():
    from backends.vocab import unknown_prompt_words
    from ui import model_tab

    assert unknown_prompt_words("embedded", "a picture of a red star on a striped background") == []
    assert unknown_prompt_words("embedded", "A zebra in the RED sky, a zebra") == ["zebra", "in", "the", "sky"]
    assert unknown_prompt_words("sd-1.4", "a zebra") == []  # open-text models know any word
    assert model_tab.add_word("a red", ["star"]) == "a red star" and model_tab.add_word("", ["moon"]) == "moon"
    assert model_tab.add_word("a red", None) == "a red"


def test_the_method_help_gives_the_papers_settings_and_a_measured_time():
    from ui import erase_tab, helptext

    text = erase_tab.method_help("embedded", "ap", "fast", 600)
    assert text.startswith("**AP: ") and "Paper: lr 1e-5, 1000 steps" in text
    per = helptext.seconds_per_step()[("ap", "fast")]
    assert f"About {helptext._minutes(per * 600)} for 600 steps" in text  # the measured rate times the steps
    assert "measured there only" in erase_tab.method_help("sd-1.4", "ap", "fast", 450)
    assert "under a second" in erase_tab.method_help("embedded", "uce", "fast", 1)
    assert erase_tab.method_help("embedded", "ap", "fast", -3) == ""  # a bad value: the form says so on submit
    assert [v for _, v in helptext.method_choices()] == list(erase_tab.list_methods())


def test_a_running_spectrum_shows_placeholders_not_empty_frames(tmp_path, monkeypatch):
    from ui import spectrum_tab

    app_jobs = JobManager(tmp_path / "jobs", workers=0)  # it stays queued: only its view is looked at
    monkeypatch.setattr(state, "_manager", app_jobs)
    job = app_jobs.submit("spectrum", {"model": "embedded", "targets": ["star"],
                                       "config": {"vocab": "world", "proxy_only": True}})
    info = app_jobs.info(job)
    info.state = "running"
    text, hist, top, scatter, table, csv = spectrum_tab.spectrum_view(job, info)
    assert "when the spectrum is done" in hist.layout.annotations[0].text and top is hist and csv is None
    assert list(table.columns) == spectrum_tab.TABLE_COLUMNS and table.empty


def test_the_spectrum_form_asks_for_a_proxy_guided_spectrum_and_shows_its_calibration(tmp_path, monkeypatch):
    import json

    from ui import spectrum_tab

    monkeypatch.setattr(state, "_manager", JobManager(tmp_path / "jobs", workers=0))
    job = spectrum_tab.spectrum_start("embedded", "star", "world-captions", None, 0, 2, 4, 5.0, 0, "", False, 40)
    config = state.manager().folder(job).record["params"]["config"]
    assert (config["vocab"], config["delta_top"], config["delta_text"], config["delta_random"]) == ("world-captions", 40, 20, 20)
    plain = spectrum_tab.spectrum_start("embedded", "star", "world", None, 0, 2, 4, 5.0, 0, "", False)
    assert "delta_top" not in state.manager().folder(plain).record["params"]["config"]
    (tmp_path / "out").mkdir()
    assert spectrum_tab.guided_note(tmp_path / "out") == ""  # a full spectrum, or no config yet
    summary = {"guided": {"concepts": 1403, "sampled": 63, "calibration": 20, "top": 10, "top_cut_delta": 4.0,
                          "calibration_above_cut": 1, "expected_missed": 67.0}}
    (tmp_path / "out" / "config.json").write_text(json.dumps({"summary": summary}))
    note = spectrum_tab.guided_note(tmp_path / "out")
    assert "63 of 1403 concepts" in note and "1 of the random ones" in note and "about 67.0" in note


def test_a_spectrum_job_shows_concepts_done_and_the_time_left_it_measured():
    from jobs.tasks import Rate
    from ui.spectrum_tab import timing

    clock = iter([100.0, 110.0, 130.0])
    rate = Rate(lambda: next(clock))
    assert rate.left(2, 27) is None  # the first report of the count: nothing measured yet
    assert rate.left(4, 27) == pytest.approx(23 * 5.0) and rate.left(6, 27) == pytest.approx(21 * 7.5)
    running = JobInfo("spectrum-20261203-090000-000", "spectrum", "t", "running", 6, 27, "", "", "/x", 40.0, "", 0.0, 157.5)
    assert timing(running.id, running, erasing=False).startswith(", about 2 min 38 s left · ")
    assert "left" not in timing(running.id, running, erasing=True)  # the quick erasure's steps come first


def test_the_method_line_times_a_run_on_this_server_or_says_its_figure_is_a_reference():
    from ui.helptext import run_time

    here = run_time("esd", "fast", 200, "embedded", (60.0, 100))
    assert "On this server its latest 100-step job took 60 s" in here and "about 2 min for 200 steps" in here
    assert "a reference figure" in run_time("esd", "fast", 50, "embedded")


def test_the_method_line_reads_this_servers_latest_finished_job(app_jobs):
    job = app_jobs.submit("erase", {"model": "embedded", "method": "esd", "targets": ["star"],
                                    "presets": "object,fast", "overrides": {"steps": 2}})
    assert erase_tab.measured_here("embedded", "esd", "fast") is None  # not finished yet: nothing measured
    info = app_jobs.wait(job, 300)
    assert erase_tab.measured_here("embedded", "esd", "fast") == (info.run_s, 2)
    assert erase_tab.measured_here("embedded", "ap", "fast") is None


def test_a_picked_spectrum_job_fills_its_form_exactly(tmp_path, monkeypatch):
    from ui import spectrum_tab

    monkeypatch.setattr(state, "_manager", JobManager(tmp_path / "jobs", workers=0))
    job = spectrum_tab.spectrum_start("embedded", "star, heart", "world", None, 12, 3, 17, 4.5, 7, "", False, 6)
    form = spectrum_tab.spectrum_form(job)
    assert form == ("star, heart", spectrum_tab.QUICK_ERASURE, "world", 12, 3, 17, 4.5, 7, False, 6)
    assert spectrum_tab.spectrum_form("") == spectrum_tab.SpectrumForm(*[gr.skip()] * 10)  # no job: untouched
