"""Background jobs: bad requests write nothing, jobs run in the worker, cancel/resume, and a job cut
off by a restart is reported as interrupted and resumes to the uninterrupted result."""

import json
import time

import pytest
import torch
from safetensors.torch import load_file

from jobs import JobManager
from jobs.store import JobFolder

ESD = {"model": "embedded", "method": "esd", "targets": ["star"], "presets": "object,fast"}


def _wait_for(predicate, timeout=300.0):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if predicate():
            return
        time.sleep(0.2)
    raise TimeoutError("condition not reached")


@pytest.mark.parametrize("params, message", [
    ({**ESD, "targets": [""]}, "non-empty"),
    ({**ESD, "targets": ["zebra"]}, "does not know 'zebra'"),
    ({**ESD, "targets": ["star" * 60]}, "longer than 200"),
    ({**ESD, "overrides": {"lr": -1.0}}, "lr must be > 0"),
    ({**ESD, "overrides": {"steps": 0}}, "steps must be > 0"),
    ({**ESD, "overrides": {"param_group": "everything"}}, "unknown parameter group"),
    ({**ESD, "method": "magic"}, "unknown erasure method"),
])
def test_bad_erase_requests_are_refused_and_write_nothing(tmp_path, params, message):
    manager = JobManager(tmp_path / "jobs")
    with pytest.raises(ValueError, match=message):
        manager.submit("erase", params)
    assert list((tmp_path / "jobs").iterdir()) == []


@pytest.mark.parametrize("config, message", [
    ({"k": 0}, "k .* must be in 1..1000"),
    ({"k": 10**6}, "k .* must be in 1..1000"),
    ({"vocab": "no-such-vocabulary"}, "unknown vocabulary"),
    ({"colour": "red"}, "unknown spectrum setting"),
])
def test_bad_spectrum_requests_are_refused(tmp_path, config, message):
    manager = JobManager(tmp_path / "jobs")
    with pytest.raises(ValueError, match=message):
        manager.submit("spectrum", {"model": "embedded", "targets": ["star"], "config": config})
    assert list((tmp_path / "jobs").iterdir()) == []


def test_binary_vocabulary_upload_is_refused(tmp_path):
    upload = tmp_path / "words.txt"
    upload.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ValueError, match="binary|UTF-8"):
        JobManager(tmp_path / "jobs").submit("spectrum", {"model": "embedded", "targets": ["star"],
                                                          "config": {"vocab": str(upload)}})


def test_spectrum_of_an_unfinished_erasure_is_refused(tmp_path):
    manager = JobManager(tmp_path / "jobs")
    job = JobFolder.create(manager.root, "erase", ESD, "never ran")
    with pytest.raises(ValueError, match="has not finished"):
        manager.submit("spectrum", {"model": "embedded", "targets": ["star"], "run": job.id})


def test_erase_then_spectrum_jobs_run_in_the_worker(tmp_path):
    manager = JobManager(tmp_path / "jobs")
    erase_id = manager.submit("erase", {**ESD, "overrides": {"steps": 6}})
    assert manager.info(erase_id).state in ("queued", "running")  # submit returns at once
    info = manager.wait(erase_id, 300)
    assert (info.state, info.step, info.total) == ("done", 6, 6)
    spectrum_id = manager.submit("spectrum", {"model": "embedded", "targets": ["star"], "run": erase_id,
                                              "config": {"k": 1, "steps": 4, "proxy_only": True}})
    info = manager.wait(spectrum_id, 300)
    assert info.state == "done", info.message
    table = (manager.folder(spectrum_id).spectrum_path / "spectrum.csv").read_text().splitlines()
    assert len(table) == 1 + info.total and "star" in "".join(table)
    assert [j.id for j in manager.jobs()] == [spectrum_id, erase_id]  # newest first

@pytest.mark.slow

def test_cancel_then_resume_matches_an_uninterrupted_run(tmp_path):
    params = {**ESD, "overrides": {"steps": 30, "checkpoint_every": 5}}
    manager = JobManager(tmp_path / "jobs")
    straight = manager.wait(manager.submit("erase", params), 300)
    job_id = manager.submit("erase", params)
    _wait_for(lambda: manager.info(job_id).step >= 8)
    manager.cancel(job_id)
    info = manager.wait(job_id, 300)
    assert info.state == "cancelled" and info.step < 30
    with pytest.raises(ValueError, match="nothing to cancel"):
        manager.cancel(job_id)
    manager.resume(job_id)
    assert manager.wait(job_id, 300).state == "done"
    a = load_file(str(manager.folder(straight.id).run_path / "result.safetensors"))
    b = load_file(str(manager.folder(job_id).run_path / "result.safetensors"))
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_a_job_cut_off_by_a_restart_is_interrupted_and_resumes(tmp_path):
    root = tmp_path / "jobs"
    job = JobFolder.create(root, "erase", {**ESD, "overrides": {"steps": 4}}, "esd star")
    job.set_state("running", 2, 4)  # what a killed app leaves behind
    manager = JobManager(root)  # "the restarted app"
    assert manager.info(job.id).state == "interrupted"
    with pytest.raises(ValueError, match="only interrupted, cancelled or failed"):
        manager.resume(manager.submit("erase", {**ESD, "overrides": {"steps": 2}}))
    manager.resume(job.id)
    assert manager.wait(job.id, 300).state == "done"
    assert json.loads((job.path / "state.json").read_text())["state"] == "done"


def test_unknown_job_and_unwritable_folder_give_clear_errors(tmp_path):
    manager = JobManager(tmp_path / "jobs")
    with pytest.raises(KeyError, match="no job"):
        manager.info("erase-20260101-000000-000")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(PermissionError, match="CSE_JOBS_DIR"):
        JobManager(blocker / "jobs")


def test_jobs_list_newest_first_whatever_their_kind(tmp_path):
    manager = JobManager(tmp_path / "jobs", workers=0)
    first = manager.submit("spectrum", {"model": "embedded", "targets": ["star"], "config": {"vocab": "world"}})
    time.sleep(1.1)  # ids carry the creation second
    second = manager.submit("erase", {**ESD, "overrides": {"steps": 2}})
    assert [j.id for j in manager.jobs()] == [second, first]  # "spectrum-..." sorts after "erase-..." by name


def test_live_updates_share_one_listing(tmp_path, monkeypatch):
    import jobs.manager

    manager = JobManager(tmp_path / "jobs", workers=0)
    manager.submit("erase", {**ESD, "overrides": {"steps": 2}})
    scans = []
    real = jobs.manager.job_folders
    monkeypatch.setattr(jobs.manager, "job_folders", lambda root: scans.append(root) or real(root))
    for _ in range(5):  # five open tabs on one tick
        assert len(manager.jobs(max_age=60)) == 1
    assert len(scans) == 1
    manager.submit("erase", {**ESD, "overrides": {"steps": 3}})
    assert len(manager.jobs()) == 2 and len(scans) == 2  # a plain call always lists afresh


def test_delete_and_rerun_a_job_and_its_running_time(tmp_path):
    manager = JobManager(tmp_path / "jobs")
    params = {**ESD, "overrides": {"steps": 3}}
    job = manager.submit("erase", params, client="alice")
    with pytest.raises(ValueError, match="another visitor; only they can delete it"):
        manager.delete(job, client="bob")
    info = manager.wait(job, 300)
    assert info.state == "done" and info.run_s > 0  # the time it spent running, kept with its state
    with pytest.raises(ValueError, match="another visitor; only they can run it again"):
        manager.rerun(job, client="bob")
    again = manager.rerun(job, client="alice")  # the same settings, a new job
    assert again != job and manager.folder(again).record["params"] == manager.folder(job).record["params"]
    assert manager.wait(again, 300).state == "done"
    manager.delete(job, client="alice")
    assert not manager.folder(again).path.parent.joinpath(job).exists()
    assert [j.id for j in manager.jobs()] == [again]
    with pytest.raises(KeyError, match="no job"):
        manager.delete(job)


def test_a_live_job_cannot_be_deleted(tmp_path):
    manager = JobManager(tmp_path / "jobs", workers=0)  # nothing runs: the job stays queued
    job = manager.submit("erase", {**ESD, "overrides": {"steps": 2}})
    with pytest.raises(ValueError, match="queued or running; cancel it first"):
        manager.delete(job)
    assert manager.info(job).state == "queued"


def test_resumed_jobs_add_their_running_time(tmp_path):
    root = tmp_path / "jobs"
    job = JobFolder.create(root, "erase", {**ESD, "overrides": {"steps": 2}}, "esd star")
    job.set_state("running", 1, 2, run_s=100.0)  # a first attempt ran 100 s, then the app died
    job.set_state("running", 1, 2)  # a state without a duration keeps the last one
    assert job.info(live=False).run_s == 100.0
    manager = JobManager(root)
    manager.resume(job.id)
    assert manager.wait(job.id, 300).run_s > 100.0


def test_one_table_of_job_kinds_drives_the_manager_the_limits_and_the_job_filter(tmp_path):
    from jobs import Limits
    from jobs.tasks import KINDS
    from ui.jobs_tab import KIND_FILTER

    assert set(KINDS) == {"erase", "spectrum"} and KIND_FILTER[1:] == tuple(KINDS)
    assert all(Limits().active_cap(kind) >= 1 for kind in KINDS)  # every kind has its cap on a shared server
    with pytest.raises(ValueError, match="unknown job kind 'train'; valid: erase, spectrum"):
        JobManager(tmp_path / "jobs", workers=0).submit("train", {})
