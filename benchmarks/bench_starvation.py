"""A public Space under a flood: can one visitor starve another? (README, "On a shared machine").

    python -m benchmarks.bench_starvation            # ~5 min on 2 CPU cores; writes results/starvation.json

Serves the real app (`python app.py`, default limits) and measures, over raw HTTP with one cookie jar per
visitor:
1. the victim's 1-image Generate (25 steps) alone: median of 5;
2. the same while a flooder, another visitor, hits every endpoint at its limits at once: Generate (16 images x
   100 steps) in a loop, Compare (12 prompts x 8 seeds x 100 steps) in a loop, Load of 15 hub ids it may not
   use, an AP erasure job of 2,000 steps and a spectrum job (k = 16, 100 sampler steps): median of 5.
   Bar: within 3x the alone time (median of 5);
3. after the flood, how long a Cancel of the flooder's spectrum, once it samples, takes to stop it (bar: <= 5 s),
   and of its erasure;
4. a 300 MiB upload: refused (bar: an error status, and no file over the limit stored: the size is checked
   as the bytes arrive, so nothing beyond the limit is written).
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

from benchmarks.common import write_result
from tests.app_server import AppServer, Visitor

GENERATE = ["embedded", "a red star", 0, 1, 25, 5.0, "cpu", "float32"]  # the victim's request
SAMPLING_AFTER_S = 20  # after its quick erasure, a spectrum loads both models and computes D(c) (~10 s), then samples
FLOOD_GENERATE = ["embedded", "a blue heart", 0, 16, 100, 5.0, "cpu", "float32"]
FLOOD_COMPARE = ["embedded", "\n".join(["a red star", "a blue heart", "a green circle"] * 4), 0, 8, [], 100, 5.0, False,
                 "cpu", "float32"]


def victim_median(victim: Visitor, n: int = 5) -> tuple[float, list[float]]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        kind, out = victim.call("generate", GENERATE)
        if kind != "complete":
            raise RuntimeError(f"the victim's Generate failed: {out}")
        times.append(round(time.perf_counter() - t0, 2))
    return statistics.median(times), times


class Flood:
    """The flooder's endless requests, each endpoint in its own thread; counts what was answered how."""

    def __init__(self, flooder: Visitor):
        self.flooder, self.stop, self.answers = flooder, threading.Event(), {}
        self.threads = [threading.Thread(target=self._loop, args=(api, data), daemon=True)
                        for api, data in (("generate", FLOOD_GENERATE), ("compare", FLOOD_COMPARE))]
        self.threads.append(threading.Thread(target=self._loads, daemon=True))

    def _count(self, api: str, kind: str, out=None) -> None:
        """One more answer of `kind`; an error's message (the first 90 characters) is counted by itself."""
        if kind == "error":
            kind = f"error: {str(out)[:90]}"
        self.answers.setdefault(api, {}).setdefault(kind, 0)
        self.answers[api][kind] += 1

    def _loop(self, api: str, data: list) -> None:
        while not self.stop.is_set():
            try:
                self._count(api, *self.flooder.call(api, data))
            except (OSError, http.client.HTTPException):  # a stream cut off while the server is busy
                self._count(api, "http error")
            time.sleep(0.5)

    def _loads(self) -> None:
        for i in range(15):
            self._count("load_model", *self.flooder.call("load_model", [f"nobody/model-{i}", "cpu", "float32"]))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()


def wait_state(visitor: Visitor, api: str, job: str, test, timeout: float = 600) -> str:
    t0 = time.time()
    while time.time() - t0 < timeout:
        kind, out = visitor.call(api, [job])
        if kind == "complete" and test(out[0]):
            return out[0]
        time.sleep(0.25)
    raise TimeoutError(f"{job}: no such state in {timeout} s")


def cancel_time(owner: Visitor, api: str, job: str) -> float:
    """Seconds from job_cancel to the job's status saying cancelled."""
    t0 = time.perf_counter()
    kind, out = owner.call("job_cancel", [job])
    if kind != "complete":
        raise RuntimeError(f"cancel of {job} refused: {out}")
    wait_state(owner, api, job, lambda s: "**cancelled**" in s)
    return time.perf_counter() - t0


def big_upload(url: str, mib: int = 300) -> dict:
    """Stream a `mib` MiB file to the upload route; how far it got and what the server said."""
    parsed = urllib.parse.urlparse(url)
    boundary = "cse-bench-boundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"huge.txt\"\r\n"
            "Content-Type: text/plain\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    size = mib * 2**20
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=120)
    conn.putrequest("POST", "/gradio_api/upload")
    conn.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
    conn.putheader("Content-Length", str(len(head) + size + len(tail)))
    conn.endheaders()
    sent, chunk, t0 = 0, b"star\n" * (2**20 // 5), time.perf_counter()
    try:
        conn.send(head)
        while sent < size:
            conn.send(chunk[: size - sent])
            sent += len(chunk[: size - sent])
        conn.send(tail)
        response = conn.getresponse()
        status, body = response.status, response.read()[:300].decode(errors="replace")
    except OSError as e:  # the server closed the connection while we were still sending
        status, body = None, f"{type(e).__name__}: {e}"
    return {"mib": mib, "sent_bytes": sent, "status": status, "answer": body,
            "seconds": round(time.perf_counter() - t0, 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="starvation")
    a = p.parse_args()
    jobs = Path(tempfile.mkdtemp()) / "jobs"
    server = AppServer(jobs).start()
    try:
        victim, flooder = Visitor(server.url), Visitor(server.url)
        victim.call("generate", GENERATE)  # warm-up: the pipeline loads once
        alone, alone_runs = victim_median(victim)
        kind, out = flooder.call("erase_start", ["embedded", "ap", "star", "object", "fast", "xattn", 2000, 1e-3, 0])
        erase_job = out[0] if kind == "complete" else None
        kind, out = flooder.call("spectrum_start", ["embedded", "star", "world", None, 0, 16, 100, 5.0, 0, "", False, 0])
        spectrum_job = out[0] if kind == "complete" else None
        refused = {} if spectrum_job else {"spectrum_start": out}
        with Flood(flooder) as flood:
            time.sleep(5)  # every flood thread is in the server
            flooded, flooded_runs = victim_median(victim)
        # the cancels, with the flood over: a job's Cancel stops it at its next step
        erase_cancel = cancel_time(flooder, "erase_status", erase_job) if erase_job else None
        spectrum_cancel = None
        if spectrum_job:  # once it samples (its quick erasure done, models loaded), as a visitor would press Cancel
            wait_state(flooder, "spectrum_status", spectrum_job, lambda s: "step 200 / 200" in s or "concepts" in s)
            time.sleep(SAMPLING_AFTER_S)
            spectrum_cancel = cancel_time(flooder, "spectrum_status", spectrum_job)
        upload = big_upload(server.url)
        stored = [p.stat().st_size for p in Path(tempfile.gettempdir()).rglob("huge.txt") if p.is_file()]
    finally:
        server.kill()
    rows = {"victim_alone_s": round(alone, 2), "victim_flooded_s": round(flooded, 2),
            "ratio": round(flooded / alone, 2), "victim_alone_runs": alone_runs, "victim_flooded_runs": flooded_runs,
            "flood_answers": flood.answers, "refused": refused, "erase_cancel_s": erase_cancel and round(erase_cancel, 2),
            "spectrum_cancel_s": spectrum_cancel and round(spectrum_cancel, 2), "upload": upload,
            "upload_files_stored_bytes": stored}
    bars = {"generate_within_3x": rows["ratio"] <= 3.0,
            "spectrum_cancel_within_5s": spectrum_cancel is not None and spectrum_cancel <= 5.0,
            "upload_refused_while_receiving": upload["status"] != 200 and not any(s > 2**20 for s in stored)}
    print(write_result(a.out, {"command": "python -m benchmarks.bench_starvation", **rows, "bars": bars}))
    print(rows, bars)


if __name__ == "__main__":
    main()
