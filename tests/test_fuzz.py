"""Seeded fuzzing as an outsider would: random and hostile values (types, sizes, unicode, NaN/inf,
huge integers, traversal strings, server paths) into every named endpoint of the served app, over raw
HTTP, and into every flag of both CLIs. Bars: no crash, no hang, every error has a message, no
message shows a server path, no traceback in the server log, finished jobs' files untouched."""

import contextlib
import hashlib
import io
import json
import random
import re
import time
import urllib.request
from pathlib import Path

import pytest

from tests.app_server import AppServer

SEED = 1234
N_CALLS = 1100  # endpoint calls (the bar: >= 1,000)
N_CLI = 120  # CLI invocations (the bar: >= 100)
CALL_TIMEOUT_S = 120  # one call longer than this is a hang
SERVER_PATH = re.compile(r"(?<![\w.:/~-])/[\w.-]+/")  # an absolute path: /something/
# Tight limits for the fuzzed server, so that a mutation that happens to be valid stays cheap
LIMITS = {"CSE_MAX_ERASE_STEPS": "4", "CSE_MAX_SAMPLER_STEPS": "4", "CSE_MAX_IMAGES": "2", "CSE_MAX_PROMPTS": "2",
          "CSE_MAX_SEEDS": "2", "CSE_MAX_K": "2", "CSE_MAX_CONCEPTS": "40", "CSE_MAX_JOBS_PER_CLIENT": "2"}

HOSTILE = [None, "", " ", "\n", "a" * 10_000, "☃ 💥 \u202e‮ naïve", "\x00\x01\x7f", "../../etc/passwd", "/etc/passwd",
           "..\\..\\windows\\win.ini", "%2e%2e%2fetc%2fpasswd", "<img src=x onerror=alert(1)>", "requirements.txt",
           "app.py", "assets/embedded/pipeline", -1, 0, 1, 7, 2**31, 2**70, -(2**70), 1e308, -1e308, float("nan"),
           float("inf"), float("-inf"), True, False, 0.5, 3.5, [], [1, 2], ["a"], ["../../x"], {}, {"a": 1},
           {"path": "/etc/passwd"}, {"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}}, "1e6", "NaN",
           "embedded", "star", "unicorn", "cuda", "float8", "erase-20260101-000000-000", "spectrum-x", "esd,ap"]


# Identity forms a hostile visitor sends: forged proxy headers and cookies (none may name another visitor)
HEADERS = [{}, {"X-Forwarded-For": "127.0.0.1"}, {"X-Forwarded-For": "1.2.3.4, 127.0.0.1"},
           {"X-Forwarded-For": "<script>, ../../etc"}, {"X-Forwarded-For": "a" * 5000},
           {"Cookie": "cse_visitor=" + "0" * 32 + "." + "0" * 32}, {"Cookie": "cse_visitor=forged"},
           {"Cookie": "cse_visitor=; cse_visitor=x.y; =;;"}, {"Cookie": "cse_visitor=\x00\x7f\xe9"}]


def _call(url: str, api: str, data, headers: dict | None = None) -> tuple[str, object]:
    """One raw call of a named endpoint: ('complete' | 'error', payload). Raises on a hang."""
    body = json.dumps({"data": data}).encode()  # NaN/inf go over the wire as JSON extensions, as any client may send
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    req = urllib.request.Request(f"{url}gradio_api/call/{api}", body, hdrs)
    try:
        event = json.loads(urllib.request.urlopen(req, timeout=CALL_TIMEOUT_S).read())["event_id"]
    except urllib.error.HTTPError as e:  # refused before queueing (e.g. a body FastAPI cannot parse)
        return "http", e.read().decode(errors="replace")
    text = urllib.request.urlopen(urllib.request.Request(f"{url}gradio_api/call/{api}/{event}", headers=hdrs),
                                  timeout=CALL_TIMEOUT_S).read().decode()
    kind = re.findall(r"^event: (\w+)", text, re.M)[-1]
    payload = json.loads(text.rsplit("data:", 1)[1])
    return kind, payload


def _until(url: str, api: str, job: str, done, timeout=300):
    t0 = time.time()
    while time.time() - t0 < timeout:
        kind, out = _call(url, api, [job])
        if kind == "complete" and done(out[0]):
            return out
        time.sleep(0.5)
    raise TimeoutError(f"{api} {job}")


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


def _strings(value):
    """Every text a visitor reads in an answer (file payloads excepted: they are download links)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, dict) and "path" not in value:
        for v in value.values():
            yield from _strings(v)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    import os

    root = tmp_path_factory.mktemp("fuzz")
    old = {k: os.environ.get(k) for k in LIMITS}
    os.environ.update(LIMITS)
    try:
        server = AppServer(root / "jobs").start()
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    url = server.url
    # one finished erasure and one finished spectrum: their files must not change under fuzzing
    kind, out = _call(url, "erase_start", ["embedded", "esd", "star", "object", "fast", "xattn", 2, 1e-3, 0])
    assert kind == "complete", out
    erase = out[0]
    _until(url, "erase_status", erase, lambda s: s.startswith(("**done", "**failed")))
    kind, out = _call(url, "spectrum_start", ["embedded", "star", "world", None, 0, 1, 2, 5.0, 0, erase, True, 0])
    assert kind == "complete", out
    spectrum = out[0]
    _until(url, "spectrum_status", spectrum, lambda s: s.startswith(("**done", "**failed")))
    yield server, erase, spectrum
    server.kill()


MISSING_JOB = "erase-20000101-000000-000"  # well formed, never there: deleting or rerunning the real jobs would change them


def _templates(erase: str, spectrum: str) -> dict[str, list]:
    """A valid, cheap call of every named endpoint; the fuzzer mutates some of its values."""
    return {
        "load_model": ["embedded", "cpu", "float32"],
        "generate": ["embedded", "a red star", 0, 1, 2, 5.0, "cpu", "float32"],
        "cancel_sampling": [],
        "erase_defaults": ["embedded", "esd", "object", "fast"],
        "erase_start": ["embedded", "esd", "star", "object", "fast", "xattn", 2, 1e-3, 0],
        "erase_status": [erase], "job_cancel": [erase], "job_resume": [erase], "job_list": ["all", "all"],
        "job_delete": [MISSING_JOB], "job_rerun": [MISSING_JOB],
        "download_delta": [erase], "download_diffusers": [erase],
        "results": [erase], "results_grid": [erase, "a red star", 1, "cpu", "float32"],
        "results_concept": [erase, "heart", 1, "cpu", "float32"], "results_spectrum_start": [erase, "world", 1, True],
        "results_spectrum": [spectrum], "compare_spectra": [[erase]],
        "spectrum_start": ["embedded", "star", "world", None, 0, 1, 2, 5.0, 0, erase, True, 0],
        "spectrum_status": [spectrum], "download_csv": [spectrum],
        "compare": ["embedded", "a red star", 0, 1, [erase], 2, 5.0, False, "cpu", "float32"],
    }


@pytest.mark.slow
def test_fuzz_every_endpoint(fuzzed):
    server, erase, spectrum = fuzzed
    templates = _templates(erase, spectrum)
    info = json.loads(urllib.request.urlopen(server.url + "gradio_api/info", timeout=30).read())
    named = {name.lstrip("/") for name in info["named_endpoints"]}
    assert named == set(templates), f"fuzz every endpoint: missing {named - set(templates)}, stale {set(templates) - named}"
    finished = {job: _digest(Path(server.jobs_dir) / job) for job in (erase, spectrum)}
    rng = random.Random(SEED)
    seen = {"complete": 0, "error": 0, "http": 0}
    for i in range(N_CALLS):
        api = rng.choice(sorted(templates))
        data = list(templates[api])
        if data and rng.random() < 0.9:
            for _ in range(rng.randint(1, min(3, len(data)))):
                data[rng.randrange(len(data))] = rng.choice(HOSTILE)
        elif rng.random() < 0.5:  # a wrong number of values
            data = data[: rng.randrange(len(data) + 1)] if data else [rng.choice(HOSTILE)]
        kind, payload = _call(server.url, api, data, rng.choice(HEADERS))
        seen[kind] += 1
        where = f"call {i}: {api}{data!r:.300}"
        assert server.proc.poll() is None, f"the app died at {where}"
        if kind == "error":
            message = (payload or {}).get("error") if isinstance(payload, dict) else None
            assert isinstance(message, str) and message.strip(), f"no message at {where}: {payload}"
            assert "internal error" not in message, f"a bug at {where}: {message}"
            texts = [message]
        elif kind == "http":
            texts = [payload]
        else:
            texts = list(_strings(payload))
        for text in texts:
            assert not SERVER_PATH.search(text) and server.jobs_dir.as_posix() not in text, f"server path at {where}: {text:.300}"
    assert seen["error"] > N_CALLS / 2 and seen["complete"] > 20, seen  # the fuzz reached both outcomes
    log = server.log.read_text(errors="replace")
    assert "Traceback" not in log, log[log.find("Traceback") - 200 :][:3000]
    for job, digest in finished.items():
        now = _digest(Path(server.jobs_dir) / job)
        assert {k: now.get(k) for k in digest} == digest, f"files of {job} changed"


# ---------------------------------------------------------------------------- the CLIs
CLI_HOSTILE = ["", " ", "-1", "0", "abc", "1e9", "99999999999999999999", "nan", "inf", "☃💥", "\x7f", "a" * 5000,
               "../../etc", "/etc/passwd", "/proc/1/mem", "tpu", "cuda", "cuda:99", "float8", "unicorn", "owner/repo",
               "x=1", "=", "steps=abc", "lr=[1]", "batch=1e9", "unknown=1", "bogus:1234", "127.0.0.1:1", "ray://nohost:1",
               "bogus,fast", "object,object", "{concept", "world", "nearest-0", "clip-words"]


def _cli_runs(run: Path, out: Path) -> list[tuple[str, list[str], dict[str, str]]]:
    """(cli, flags, value positions): valid, cheap base invocations of every subcommand."""
    erase = ["erase", "--model", "embedded", "--method", "esd", "--target", "star", "--preset", "object,fast",
             "--steps", "1", "--lr", "0.001", "--param-group", "xattn", "--seed", "0", "--set", "checkpoint_every=0",
             "--device", "cpu", "--dtype", "float32", "--out", str(out)]
    spectrum = ["spectrum", "--model", "embedded", "--target", "star", "--run", str(run), "--vocab", "world",
                "--size", "5", "--k", "1", "--seed", "0", "--steps", "2", "--guidance", "5", "--template", "a {concept}",
                "--scorer", "embedded", "--proxy-only", "--proxy-dtype", "float32", "--workers", "1",
                "--device", "cpu", "--out", str(out)]
    return [("erasure", erase), ("erasure", ["resume", str(run), "--device", "cpu"]),
            ("erasure", ["export", str(run), "--out", str(out)]), ("erasure", ["list-methods"]),
            ("sensitivity", spectrum), ("sensitivity", spectrum + ["--address", "bogus:1234"])]


def _invoke(cli: str, argv: list[str]) -> tuple[int, str]:
    from erasure.cli import main as erasure_main
    from sensitivity.cli import main as sensitivity_main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = (erasure_main if cli == "erasure" else sensitivity_main)(argv)
        except SystemExit as e:  # argparse's own usage errors
            code = e.code
    return code, err.getvalue()


@pytest.mark.slow
def test_fuzz_every_cli_flag(tmp_path, monkeypatch):
    from erasure import erase

    monkeypatch.chdir(tmp_path)  # relative --out values land here, not in the repository
    run = erase("embedded", "esd", ["star"], "object,fast", tmp_path / "run", steps=2, checkpoint_every=0).path
    before = _digest(run)
    rng = random.Random(SEED)
    codes = []
    t0 = time.time()
    for i in range(N_CLI):
        out = tmp_path / f"out{i}"
        cli, base = rng.choice(_cli_runs(run, out))
        argv = list(base)
        # the values of flags, and the run folder of resume/export; list-methods has none
        values = [j for j in range(1, len(argv)) if argv[j - 1].startswith("--") and not argv[j].startswith("--")]
        values += [1] if argv[0] in ("resume", "export") else []
        if rng.random() < 0.85:  # else the valid base: it must run and succeed
            for j in rng.sample(values, min(len(values), rng.randint(1, 2))):
                argv[j] = rng.choice(CLI_HOSTILE)
        code, err = _invoke(cli, argv)  # an uncaught exception fails the test here: a crash
        codes.append(code)
        assert code in (0, 2, 130), f"invocation {i}: {cli} {argv!r:.300} exited {code}: {err[-500:]}"
        assert "Traceback" not in err, f"invocation {i}: {cli} {argv!r:.300}: {err[-1500:]}"
        if code == 2:
            assert err.strip().splitlines()[-1].startswith(("error:", "usage:")) or "error:" in err, err[-500:]
    assert time.time() - t0 < 900, "the CLI fuzz took too long: an invocation hangs or starts real work"
    assert codes.count(2) > N_CLI / 2 and 0 in codes, codes  # mostly refused, and some ran
    assert _digest(run) == before  # resume/export of a finished run change nothing in it
