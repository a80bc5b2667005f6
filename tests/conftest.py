"""Shared fixtures. Tests never touch the network: the hub is forced offline."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import pytest  # noqa: E402
import torch  # noqa: E402

if "OMP_NUM_THREADS" not in os.environ:  # respect an explicit thread budget
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

# Every test's set-up, call and teardown seconds, written at the end of a session (CI keeps the file): what the
# fast lane (`pytest -m "not slow"`, docs/development.md) is sized from.
DURATIONS = os.environ.get("CSE_DURATIONS", ".pytest_durations.json")
_durations: dict[str, dict[str, float]] = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    _durations.setdefault(item.nodeid, {})[report.when] = round(report.duration, 2)


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
