"""One request path (docs/design.md §3.1, §2): the CLI, the job manager and the app describe an erasure
or a spectrum as a typed request, check it in one place and carry it out with one function."""

import ast
import dataclasses
import json
from pathlib import Path

import pytest

from erasure import EraseRequest, ResolvedErase
from sensitivity import ResolvedSpectrum, SpectrumRequest

ROOT = Path(__file__).resolve().parent.parent


def test_an_erase_request_round_trips_and_its_one_check_refuses_each_mistake():
    request = EraseRequest("embedded", "esd", ("star",), "object,fast", {"steps": 3}, "cpu", "float32")
    assert EraseRequest.from_dict(request.to_dict()) == request
    resolved = request.check()
    assert resolved.steps == 3 and resolved.config.template == "a {concept}" and resolved.family == "sd"
    assert ResolvedErase.from_dict(json.loads(json.dumps(resolved.to_dict()))) == resolved  # a job stores it
    assert request.with_overrides(lr=0.1).overrides == {"steps": 3, "lr": 0.1}
    mistakes = [({"method": "nope"}, "unknown erasure method 'nope'"),
                ({"dtype": "float64"}, "unknown dtype 'float64'"),
                ({"device": "tpu"}, "unknown device 'tpu'; use cpu, cuda or cuda:N"),
                ({"targets": ("unicorn",)}, "the embedded model does not know 'unicorn'"),
                ({"overrides": {"stpes": 3}}, r"unknown setting\(s\) \['stpes'\]"),
                ({"presets": "object,slow"}, "unknown preset 'slow'"),
                ({"checkpoints_total_limit": 0}, "checkpoints_total_limit must be a whole number from 1 to 1000")]
    for change, message in mistakes:
        with pytest.raises(ValueError, match=message):
            EraseRequest(**{**request.to_dict(), **change}).check()
    EraseRequest(**{**request.to_dict(), "targets": ("unicorn",), "force": True}).check()  # --force skips the guard
    with pytest.raises(ValueError, match=r"unknown erase request field\(s\) \['target'\]"):
        EraseRequest.from_dict({"target": ["star"]})
    with pytest.raises(ValueError, match="targets must be a list of concepts"):
        EraseRequest.from_dict({"targets": "star"})


def test_a_spectrum_request_round_trips_and_its_one_check_refuses_each_mistake():
    request = SpectrumRequest("embedded", ("star",), {"vocab": "world", "k": 2}, words=("circle", "moon"))
    assert SpectrumRequest.from_dict(request.to_dict()) == request
    resolved = request.check()
    config, concepts = resolved.config, resolved.concepts
    assert ResolvedSpectrum.from_dict(json.loads(json.dumps(resolved.to_dict()))) == resolved
    assert resolved.erasure.request.method == "esd" and resolved.erasure.config.template == config.template
    assert config.k == 2 and concepts[:3] == ["", "a photo", "star"] and {"circle", "moon"} <= set(concepts)
    mistakes = [({"config": {"kk": 2}}, r"unknown spectrum setting\(s\) \['kk'\]"),
                ({"config": {"vocab": "nope"}}, "nope"),
                ({"device": "gpu"}, "unknown device 'gpu'"),
                ({"targets": ("unicorn",)}, "the embedded model does not know 'unicorn'")]
    for change, message in mistakes:
        with pytest.raises(ValueError, match=message):
            SpectrumRequest(**{**request.to_dict(), "words": None, **change}).check()
    with pytest.raises(ValueError, match=r"unknown spectrum request field\(s\) \['vocab'\]"):
        SpectrumRequest.from_dict({"targets": ["star"], "vocab": "world"})

@pytest.mark.slow

def test_a_spectrum_run_erases_first_only_once_and_saves_its_record(tmp_path, monkeypatch):
    import erasure
    import sensitivity.spectrum as spectrum
    from sensitivity import run

    made, train, quick = [], erasure.train, spectrum.quick_request

    def counted(resolved, out, **kwargs):
        made.append(out)
        return train(resolved, out, **kwargs)

    monkeypatch.setattr(erasure, "train", counted)
    monkeypatch.setattr(spectrum, "quick_request", lambda *a, **kw: quick(*a, **kw, steps=2))
    request = SpectrumRequest("embedded", ("star",), {"vocab": "world", "proxy_only": True})
    df = run(request, tmp_path / "out", extra={"note": "test"})
    assert len(made) == 1 and (tmp_path / "out" / "erasure" / "result.safetensors").exists()
    assert df["proxy"].notna().all() and df["delta"].isna().all()  # proxy only: nothing sampled
    again = run(request, tmp_path / "out")  # a restarted job: the finished quick erasure is kept
    assert len(made) == 1 and again["proxy"].tolist() == df["proxy"].tolist()
    record = json.loads((tmp_path / "out" / "config.json").read_text())
    assert record["run"] == str(tmp_path / "out" / "erasure") and record["config"]["proxy_only"] is True
    assert record["config"]["scorer"] is None  # nothing was scored: no scorer recorded
    assert "wall_s" in record and "note" not in record  # the second run's record, with its own extras


def test_the_quick_erasure_reports_its_steps_and_a_cancelled_one_resumes(tmp_path, monkeypatch):
    """A spectrum job's first phase shows its own progress (not "0 / 27 concepts" for minutes), stops on
    cancel, and a restarted job continues it from its checkpoint instead of erasing again from step 0."""
    import sensitivity.request as req
    import sensitivity.spectrum as spectrum
    from erasure import Cancelled, CancelToken
    from sensitivity import run

    quick = spectrum.quick_request
    monkeypatch.setattr(spectrum, "quick_request", lambda *a, **kw: quick(*a, **kw, steps=4))
    monkeypatch.setattr(req, "QUICK_CHECKPOINT", 2)  # read when the request is checked
    request = SpectrumRequest("embedded", ("star",), {"vocab": "world", "proxy_only": True})
    token, lines = CancelToken(), []

    def progress(done, total, message):
        lines.append(message)
        if message == req.QUICK_STEP.format("ESD", 3, 4):
            token.cancel()

    with pytest.raises(Cancelled):
        run(request, tmp_path / "out", progress=progress, cancel=token)
    assert lines == [req.QUICK_STEP.format("ESD", i, 4) for i in range(4)]  # the start event, then each step
    lines.clear()
    df = run(request, tmp_path / "out", progress=progress)
    assert lines[:2] == [req.QUICK_STEP.format("ESD", 3, 4), req.QUICK_STEP.format("ESD", 4, 4)]  # from the checkpoint
    assert (tmp_path / "out" / "erasure" / "result.safetensors").exists() and df["proxy"].notna().all()


def _calls(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            f = node.func
            names.add(f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", ""))
    return names


def test_the_cli_jobs_and_app_validate_only_through_the_requests():
    """No caller resolves a config, guards unknown words or builds a SpectrumConfig itself."""
    private = {"resolve_with_sources", "resolve_config", "check_known_concepts", "SpectrumConfig", "erase", "compute_spectrum"}
    ui = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "ui").glob("*.py"))]
    for path in ("erasure/cli.py", "sensitivity/cli.py", "jobs/tasks.py", "jobs/manager.py", "app.py", *ui):
        assert _calls(ROOT / path) & private == set(), path
    assert {"EraseRequest", "run"} <= _calls(ROOT / "erasure/cli.py")
    assert {"SpectrumRequest", "run"} <= _calls(ROOT / "sensitivity/cli.py")
    assert {"from_dict", "train", "measure"} <= _calls(ROOT / "jobs/tasks.py")  # the stored resolution, run
    assert "EraseRequest" in _calls(ROOT / "ui/erase_tab.py") and "SpectrumRequest" in _calls(ROOT / "ui/spectrum_tab.py")


def test_the_resolved_config_names_a_scorer_only_when_one_is_used():
    from sensitivity import SpectrumConfig

    def scorer(**kw):
        return SpectrumConfig(targets=["star"], **kw).resolved("embedded").scorer

    assert scorer() == "embedded" and scorer(proxy_only=True, text_space="scorer") == "embedded"
    assert scorer(proxy_only=True) is None and scorer(proxy_only=True, scorer="embedded") is None


@pytest.mark.slow
def test_each_job_resolves_its_request_once_from_the_form_to_the_trainer(tmp_path, monkeypatch):
    """docs/design.md §3.1: the app's handler builds a request, the job manager checks it and stores its
    resolution, and the worker trains (or measures) that stored resolution without resolving it again."""
    import erasure.trainer as trainer
    import sensitivity.rows as rows
    import sensitivity.spectrum as spectrum
    from jobs import JobManager
    from ui import erase_tab, spectrum_tab, state

    counts = {"erase": 0, "spectrum": 0}
    resolve, resolved, quick = trainer.resolve_with_sources, rows.SpectrumConfig.resolved, spectrum.quick_request

    def count_erase(*args, **kwargs):
        counts["erase"] += 1
        return resolve(*args, **kwargs)

    def count_spectrum(self, model):
        counts["spectrum"] += 1
        return resolved(self, model)

    monkeypatch.setattr(trainer, "resolve_with_sources", count_erase)
    monkeypatch.setattr(rows.SpectrumConfig, "resolved", count_spectrum)
    monkeypatch.setattr(spectrum, "quick_request", lambda *a, **kw: quick(*a, **kw, steps=2))
    manager = JobManager(tmp_path / "jobs")
    monkeypatch.setattr(state, "_manager", manager)
    job = erase_tab.erase_start("embedded", "esd", "star, heart", "object", "fast", "xattn", 2, 1e-3, 0)
    assert counts == {"erase": 1, "spectrum": 0}
    assert manager.wait(job, 300).state == "done" and counts == {"erase": 1, "spectrum": 0}
    run = json.loads((manager.folder(job).run_path / "config.json").read_text())
    assert run["config"]["steps"] == 4 and run["presets"] == ["object", "fast", "multi"]  # 2 per concept, in turns
    assert run["config"]["checkpoint_every"] == 1 and run["config_sources"]["checkpoint_every"] == "request (10 per run)"
    after_run = spectrum_tab.spectrum_start("embedded", "star", "world", None, 0, 1, 2, 5.0, 0, job, True)
    assert manager.wait(after_run, 300).state == "done" and counts == {"erase": 1, "spectrum": 1}
    quick_first = spectrum_tab.spectrum_start("embedded", "star", "world", None, 0, 1, 2, 5.0, 0, "", True)
    assert counts == {"erase": 2, "spectrum": 2}  # the quick erasure's request is resolved with the spectrum's
    assert manager.wait(quick_first, 300).state == "done" and counts == {"erase": 2, "spectrum": 2}
    with pytest.raises(Exception, match="2 steps per concept x 3 concepts = 6 steps, more than this app's limit of 5"):
        monkeypatch.setattr(manager, "limits", dataclasses.replace(state.LIMITS, max_erase_steps=5))
        erase_tab.erase_start("embedded", "esd", "star, heart, moon", "object", "fast", "xattn", 2, 1e-3, 0)


@pytest.mark.slow
def test_a_spectrum_job_reports_its_quick_erasure_as_a_phase_not_a_message_prefix(tmp_path, monkeypatch):
    """The UI reads the job's phase (state.json) rather than matching the library's progress lines."""
    import sensitivity.spectrum as spectrum
    from backends.cancel import CancelToken
    from jobs import JobManager
    from jobs.tasks import ERASING, KINDS

    quick = spectrum.quick_request
    monkeypatch.setattr(spectrum, "quick_request", lambda *a, **kw: quick(*a, **kw, steps=2))
    manager = JobManager(tmp_path / "jobs", workers=0)
    job = manager.folder(manager.submit("spectrum", {"model": "embedded", "targets": ["star"],
                                                     "config": {"vocab": "world", "proxy_only": True}}))
    reports = []
    KINDS["spectrum"].run(job, CancelToken(), lambda step, total, message, phase="", **_: reports.append((step, total, phase)))
    phases = [phase for _, _, phase in reports]
    assert phases[0] == ERASING and phases[-1] == "" and ERASING not in phases[phases.index(""):]  # erasure first
    assert all(step == total == 0 for step, total, phase in reports if phase == ERASING)  # its steps are not concepts
    assert reports[-1][0] == reports[-1][1] > 20  # then every concept of the world
