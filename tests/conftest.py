"""Shared fixtures. Tests never touch the network: the hub is forced offline."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# A finished erase job on the embedded model is judged over its whole world (jobs.tasks.JUDGE_SEEDS: 184 images);
# the tests of that judging turn it on where they run it (tests/test_app.py's served app), the rest skip its cost
os.environ.setdefault("CSE_JUDGE_SEEDS", "0")

import pytest  # noqa: E402
import torch  # noqa: E402

if "OMP_NUM_THREADS" not in os.environ:  # respect an explicit thread budget
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

# Every test's set-up, call and teardown seconds, written at the end of a session (CI keeps the file): what the
# fast lane (`pytest -m "not slow"`, docs/development.md) is sized from.
DURATIONS = os.environ.get("CSE_DURATIONS", ".pytest_durations.json")
_durations: dict[str, dict[str, float]] = {}
# A test over ~5 s on a 2-core CPU (set-up + call + teardown) is marked slow; one that is not marked and takes
# more than this bound fails, naming the mark to add (3x the guide: an idle CI machine's noise stays under it;
# 0 turns the check off, e.g. beside a training run that shares the cores).
UNMARKED_BOUND_S = float(os.environ.get("CSE_UNMARKED_BOUND_S", "15"))
# Fixtures whose set-up takes longer than the guide (a trained run, a served app, a browser): every test that
# uses one is slow, whichever of them happens to run first and pay for it.
HEAVY_FIXTURES = {"ap_star_run", "served", "browser_page", "fuzzed", "esd_run", "runs"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HEAVY_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    spent = _durations.setdefault(item.nodeid, {})
    spent[report.when] = round(report.duration, 2)
    if report.when == "teardown" and report.passed and too_slow_unmarked(item, sum(spent.values())):
        report.outcome = "failed"
        report.longrepr = (f"{item.nodeid} took {sum(spent.values()):.1f} s (set-up, call and teardown) and is not "
                           f"marked slow; add @pytest.mark.slow (the fast lane keeps tests under ~5 s; "
                           f"docs/development.md)")


def too_slow_unmarked(item, seconds: float) -> bool:
    return bool(UNMARKED_BOUND_S) and seconds > UNMARKED_BOUND_S and item.get_closest_marker("slow") is None


def pytest_sessionfinish(session, exitstatus):
    if _durations and DURATIONS:
        import json

        with open(DURATIONS, "w") as f:
            json.dump(dict(sorted(_durations.items(), key=lambda kv: -sum(kv[1].values()))), f, indent=1)


@pytest.fixture(scope="session")
def embedded_pipe():
    from backends import load_pipeline

    return load_pipeline("embedded")


@pytest.fixture(scope="session")
def classifier():
    from backends import load_classifier

    return load_classifier()


@pytest.fixture(scope="session")
def ap_star_run(tmp_path_factory):
    """AP with the default object preset (object,fast) erasing "star" from the shipped model: the
    integration run that the erasure bar and the spectrum bar both judge (made once per session)."""
    from backends import load_pipeline
    from erasure import erase

    out = tmp_path_factory.mktemp("ap_star") / "run"
    return erase("embedded", "ap", ["star"], "object,fast", out, pipe=load_pipeline("embedded"), checkpoint_every=0).path
