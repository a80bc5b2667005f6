"""Shared fixtures. Tests never touch the network: the hub is forced offline."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import pytest  # noqa: E402
import torch  # noqa: E402

if "OMP_NUM_THREADS" not in os.environ:  # respect an explicit thread budget
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

# The fast lane (`pytest -m "not slow"`, README "Contributing"): a test that takes more than ~5 s on a 2-core
# CPU, set-up included, is marked slow. One that is not marked and takes more than FAST_BOUND_S fails, so the
# lane stays fast; the bound is three times the marking line, so a busy machine does not fail a 5 s test.
FAST_BOUND_S = float(os.environ.get("CSE_FAST_BOUND_S", "15"))
DURATIONS = os.environ.get("CSE_DURATIONS", ".pytest_durations.json")  # every test's seconds, written at the end
_durations: dict[str, dict[str, float]] = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    _durations.setdefault(item.nodeid, {})[report.when] = round(report.duration, 2)
    if report.when != "call" or not report.passed or item.get_closest_marker("slow") is not None:
        return
    seconds = sum(_durations[item.nodeid].values())  # set-up (its fixtures) + the test itself
    if seconds > FAST_BOUND_S:
        report.outcome = "failed"
        report.longrepr = (f"{item.nodeid} took {seconds:.1f} s (set-up included) without @pytest.mark.slow; the fast "
                           f"lane allows {FAST_BOUND_S:.0f} s (CSE_FAST_BOUND_S): mark it slow or make it faster")


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
