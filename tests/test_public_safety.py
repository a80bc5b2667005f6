"""A public Space must be safe: no server file can be read through the app, every request is bounded
by the limits of a shared machine, a heavy compare neither blocks a Generate nor outlives a cancel,
and each visitor has a job quota."""

import os
import re
import time
from pathlib import Path

import gradio as gr
import pytest

import app
from backends import PRESETS
from jobs import JobManager, Limits, QuotaError
from tests.app_server import AppServer
from ui import inputs, spectrum_tab, state
from ui.guard import scrub

CANARY = "CANARY-7f3a-server-secret"
SERVER_PATH = re.compile(r"(?<![\w.:/~-])/[\w.-]+/")  # an absolute path: /something/


@pytest.fixture
def canary(tmp_path):
    """A server file that must never reach any output: outside the upload folder, inside the repo's
    working directory (a relative path reaches it), and behind a symlink inside the upload folder."""
    secret = tmp_path / "secret.txt"
    secret.write_text(f"{CANARY}\nstar\nheart\n")
    local = Path(app.__file__).resolve().parent / "canary-test-vocab.txt"
    local.write_text(f"{CANARY}\n")
    uploads = Path(gr.utils.get_upload_folder())
    uploads.mkdir(parents=True, exist_ok=True)
    link = uploads / f"link-{os.getpid()}.txt"
    link.unlink(missing_ok=True)
    link.symlink_to(secret)
    yield {"absolute": str(secret), "relative": "canary-test-vocab.txt", "traversal": f"ui/../{local.name}",
           "dotdot": "../" * 12 + str(secret).lstrip("/"), "symlink": str(link), "repo file": "requirements.txt"}
    local.unlink(missing_ok=True)
    link.unlink(missing_ok=True)


def _jobs_written(root: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in root.rglob("*") if p.is_file()) if root.exists() else ""


@pytest.mark.parametrize("form", ["absolute", "relative", "traversal", "dotdot", "symlink", "repo file"])
def test_a_server_path_is_refused_as_vocabulary_name_and_as_upload(form, canary, tmp_path, monkeypatch):
    monkeypatch.setattr(state, "_manager", JobManager(tmp_path / "jobs", workers=0))
    path = canary[form]
    for vocab, upload in ((path, None), ("world", path), ("world", {"path": path})):
        with pytest.raises(gr.Error) as err:
            spectrum_tab.spectrum_start("embedded", "star", vocab, upload, 0, 2, 4, 5.0, 0, "", True)
        message = str(err.value.message)
        assert CANARY not in message and not SERVER_PATH.search(message), message
    assert state.manager().jobs() == [] and CANARY not in _jobs_written(tmp_path / "jobs")


def test_an_upload_is_read_at_submit_time_and_travels_in_the_job(tmp_path, monkeypatch):
    """The positive control: a real upload (a file in Gradio's upload folder) is accepted, its words
    become the spectrum's rows, and the job no longer needs the temporary file."""
    monkeypatch.setattr(state, "_manager", JobManager(tmp_path / "jobs", workers=0))
    upload = Path(gr.utils.get_upload_folder()) / f"up-{os.getpid()}" / "my words.txt"
    upload.parent.mkdir(parents=True, exist_ok=True)
    upload.write_text("circle\nheart\n")
    job = spectrum_tab.spectrum_start("embedded", "star", "world", str(upload), 0, 2, 4, 5.0, 0, "", True)
    upload.unlink()
    record = state.manager().folder(job).record
    assert record["params"]["words"] == ["circle", "heart"] and record["params"]["config"]["vocab"] == "upload:my words.txt"
    assert str(upload.parent) not in (tmp_path / "jobs" / job / "job.json").read_text()

@pytest.mark.slow

def test_a_served_app_refuses_server_files_through_the_api(canary, tmp_path):
    """Over HTTP, as an outsider: a vocabulary name that is a path, and a FileData naming a server file
    (which no client upload produced), are refused; nothing of the canary reaches any job file."""
    import json
    import urllib.request

    server = AppServer(tmp_path / "jobs").start()
    try:
        for payload in ([canary["absolute"], None], ["world", {"path": canary["absolute"], "meta": {"_type": "gradio.FileData"}}],
                        ["world", {"path": canary["symlink"], "meta": {"_type": "gradio.FileData"}}],
                        [canary["relative"], None]):
            data = ["embedded", "star", *payload, 0, 2, 4, 5.0, 0, "", True]
            req = urllib.request.Request(server.url + "gradio_api/call/spectrum_start", json.dumps({"data": data}).encode(),
                                         {"Content-Type": "application/json"})
            event = json.loads(urllib.request.urlopen(req, timeout=30).read())["event_id"]
            answer = urllib.request.urlopen(f"{server.url}gradio_api/call/spectrum_start/{event}", timeout=60).read().decode()
            assert answer.startswith("event: error") and CANARY not in answer and not SERVER_PATH.search(answer), answer
    finally:
        server.kill()
    assert CANARY not in _jobs_written(tmp_path / "jobs")
    from jobs.examples import EXAMPLES

    shipped = {p.name for p in EXAMPLES.glob("spectrum-*")}  # the shipped examples' spectra are copied in at start
    assert {p.name for p in (tmp_path / "jobs").glob("spectrum-*")} == shipped  # no new spectrum job


# ---------------------------------------------------------------------------- limits and quotas
def test_limits_come_from_the_environment_and_bad_values_stop_the_app():
    assert Limits.from_env({}) == Limits()
    assert Limits.from_env({"CSE_MAX_ERASE_STEPS": "50", "CSE_MAX_SEEDS": "2"}).max_erase_steps == 50
    with pytest.raises(ValueError, match="CSE_MAX_SEEDS must be a whole number"):
        Limits.from_env({"CSE_MAX_SEEDS": "many"})
    with pytest.raises(ValueError, match="CSE_MAX_K must be >= 1"):
        Limits.from_env({"CSE_MAX_K": "0"})
    # a limit above what the libraries accept would only move the refusal deeper, with a worse message
    with pytest.raises(ValueError, match="CSE_MAX_PROMPTS must be <= 12 .the libraries' own bound"):
        Limits.from_env({"CSE_MAX_PROMPTS": "20"})
    assert Limits.from_env({"CSE_MAX_PROMPTS": "12"}).max_prompts == 12


def test_the_readme_lists_every_limit_with_its_default():
    readme = (Path(app.__file__).parent / "README.md").read_text()
    assert Limits.table() in readme


def test_job_quotas_per_visitor_and_per_kind(tmp_path):
    manager = JobManager(tmp_path / "jobs", workers=0, limits=Limits(max_jobs_per_client=1, max_active_erase=2))
    request = {"model": "embedded", "method": "esd", "targets": ["star"], "presets": "object,fast",
               "overrides": {"steps": 2}}
    first = manager.submit("erase", request, client="alice")
    with pytest.raises(QuotaError, match="you already have 1 jobs"):
        manager.submit("erase", request, client="alice")
    manager.submit("erase", request, client="bob")
    with pytest.raises(QuotaError, match="2 erase jobs are already queued"):
        manager.submit("erase", request, client="carol")
    with pytest.raises(ValueError, match="started by another visitor"):
        manager.cancel(first, client="bob")
    manager.cancel(first, client="alice")
    assert len(manager.jobs()) == 2  # refused requests wrote nothing


def test_a_job_larger_than_the_limit_is_refused(tmp_path):
    manager = JobManager(tmp_path / "jobs", workers=0, limits=Limits(max_concepts=10, max_erase_steps=5))
    with pytest.raises(ValueError, match="has 6 steps; the limit on this server is 5"):  # the request's own check
        manager.submit("erase", {"model": "embedded", "method": "esd", "targets": ["star"], "overrides": {"steps": 6}})
    with pytest.raises(QuotaError, match="concepts; the limit on this server is 10"):
        manager.submit("spectrum", {"model": "embedded", "targets": ["star"], "config": {"vocab": "world"}})
    assert manager.jobs() == []


@pytest.mark.parametrize("value, message", [
    ("abc", "must be a whole number"), (None, "must be a whole number"), (2**70, "must be in 0"),
    (float("nan"), "must be a whole number"), (float("inf"), "must be a whole number"), (True, "must be a whole number"),
    (2.5, "must be a whole number"), ([3], "must be a whole number"), (-1, "must be in 0")])
def test_numbers_are_type_and_range_checked(value, message):
    with pytest.raises(inputs.InputError, match=f"Seed {message}"):
        inputs.seed(value)


def _pipeline_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "model_index.json").write_text("{}")
    return path


def test_model_names_are_presets_allowed_hub_ids_or_allowed_folders(tmp_path, monkeypatch):
    """Relative two-part names (a folder under the working directory), symlinked folders and '..' forms
    never load unless allowed, and every refusal reads the same: a visitor cannot tell which exist."""
    allowed = {"CompVis/stable-diffusion-v1-4"}
    root = tmp_path / "models"
    good = _pipeline_folder(root / "mine")
    (root / "empty").mkdir()  # a folder, but no pipeline
    outside = _pipeline_folder(tmp_path / "private" / "model")  # a real pipeline, not under the allowed root
    (root / "link").symlink_to(outside)
    monkeypatch.chdir(tmp_path)  # "private/model" now names a real pipeline folder relative to the cwd
    assert inputs.model_name("embedded", PRESETS, [], allowed) == "embedded"
    assert inputs.model_name("CompVis/stable-diffusion-v1-4", PRESETS, [], allowed) == "CompVis/stable-diffusion-v1-4"
    assert inputs.model_name(str(good), PRESETS, [root], allowed) == str(good)
    refusals = set()
    for bad in ("private/model", "./private/model", "models/mine", "someone/else", str(outside), str(root / "link"),
                str(root / "empty"), str(root / "missing"), f"{root}/../private/model", "/etc", "../..",
                "a/../../b", "~/x"):
        with pytest.raises(inputs.InputError) as err:
            inputs.model_name(bad, PRESETS, [root], allowed)
        refusals.add(str(err.value))
    assert len(refusals) == 1 and str(tmp_path) not in refusals.pop()


def test_scrub_removes_server_paths():
    text = scrub(f"no file {state.JOBS_DIR}/x/y.json nor /etc/shadow; see 'owner/name' and 1/10, float32/bfloat16")
    assert state.JOBS_DIR not in text and "/etc/" not in text and "'owner/name'" in text and "1/10" in text


# ---------------------------------------------------------------------------- a heavy compare
@pytest.fixture(scope="module")
def served(tmp_path_factory):
    server = AppServer(tmp_path_factory.mktemp("heavy") / "jobs").start()
    yield server
    server.kill()


GENERATE_BOUND_S = 30.0  # a 1-image Generate while a compare at the limit runs (2 CPU cores share both)
CANCEL_BOUND_S = 30.0  # from cancel_sampling to the compare's answer (the sampler stops at its next step)


@pytest.mark.slow
def test_a_heavy_compare_does_not_block_generate_and_can_be_cancelled(served):
    from gradio_client import Client

    heavy, light = Client(served.url, verbose=False), Client(served.url, verbose=False)
    limits = Limits()
    prompts = "\n".join(["a red star", "a blue heart", "a green circle"] * 4)[: 10_000]
    assert len(prompts.splitlines()) == limits.max_prompts
    job = heavy.submit("embedded", prompts, 0, limits.max_seeds, [], limits.max_sampler_steps, 5.0, False,
                       api_name="/compare")
    time.sleep(3)  # the compare has started sampling
    assert not job.done()
    t0 = time.time()
    image = light.predict("embedded", "a red star", 0, 1, 10, 5.0, api_name="/generate")
    generate_s = time.time() - t0
    assert Path(image).exists() and generate_s < GENERATE_BOUND_S, generate_s
    assert not job.done(), "the compare finished before it could be cancelled: raise its size"
    t0 = time.time()
    assert heavy.predict(api_name="/cancel_sampling") == "sampling cancelled"
    with pytest.raises(Exception, match="compare cancelled after \\d+ of 96 images"):
        job.result(timeout=CANCEL_BOUND_S + 30)
    assert time.time() - t0 < CANCEL_BOUND_S
    # the queue is free again: another visitor's compare runs at once
    sheet, _ = light.predict("embedded", "a red star", 0, 1, [], 2, 5.0, False, api_name="/compare")
    assert Path(sheet).exists()  # one image: the base model alone
    # and the over-limit compare is refused before any sampling
    with pytest.raises(Exception, match="Prompts: at most 12 prompts"):
        light.predict("embedded", prompts + "\na red star", 0, 1, [], 2, 5.0, False, api_name="/compare")


# ---------------------------------------------------------------------------- the CLIs' own checks
def _cli(main, argv, capsys) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize("flags, message", [
    (["--device", "tpu"], "error: unknown device 'tpu'; use cpu, cuda or cuda:N"),
    (["--model", "{tmp}"], "is not a diffusers pipeline folder"),
    (["--target", "unicorn"], "error: the embedded model does not know 'unicorn'"),
    (["--set", "targets=x"], "error: targets cannot be set as a setting; pass it as the request's own field (the CLI's"),
    (["--set", "model=sd-1.4"], "error: model cannot be set as a setting"),
    (["--target", ",,,", "--force"], "error: targets must be concepts with letters or digits"),
])
def test_erasure_cli_refuses_bad_flags_with_one_error_line(flags, message, tmp_path, capsys):
    from erasure.cli import main

    flags = [f.replace("{tmp}", str(tmp_path)) for f in flags]
    argv = ["erase", "--method", "esd", "--target", "star", "--steps", "1", "--out", str(tmp_path / "run"), *flags]
    code, last = _cli(main, argv, capsys)
    assert code == 2 and message in last, last
    assert not (tmp_path / "run").exists()  # nothing started


@pytest.mark.parametrize("record", ["{}", "[]", "{\"method\": \"esd\"}", "not json"])
def test_erasure_cli_resume_of_a_broken_run_record_is_one_error_line(record, tmp_path, capsys):
    from erasure.cli import main

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(record)
    code, last = _cli(main, ["resume", str(tmp_path / "run")], capsys)
    assert code == 2 and last.startswith("error:") and "start a new run" in last, last


def test_erasure_cli_force_erases_a_word_the_model_never_saw(tmp_path, capsys):
    from erasure.cli import main

    argv = ["erase", "--method", "esd", "--target", "unicorn", "--steps", "1", "--set", "checkpoint_every=0",
            "--out", str(tmp_path / "run"), "--force"]
    assert main(argv) == 0 and (tmp_path / "run" / "result.safetensors").exists()


def test_spectrum_cli_fails_fast_on_an_unreachable_ray_cluster(ap_star_run, tmp_path, capsys):
    from sensitivity.cli import main

    t0 = time.time()
    code, last = _cli(main, ["spectrum", "--target", "star", "--run", str(ap_star_run), "--proxy-only",
                             "--address", "bogus:1234", "--out", str(tmp_path / "s")], capsys)
    assert code == 2 and "cannot reach a Ray cluster at 'bogus:1234'" in last and time.time() - t0 < 15
    code, last = _cli(main, ["spectrum", "--target", "unicorn", "--run", str(ap_star_run), "--proxy-only",
                             "--out", str(tmp_path / "s")], capsys)
    assert code == 2 and "does not know 'unicorn'" in last
