"""Start the real app (`python app.py`) in a subprocess on a free port, for API and browser tests."""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppServer:
    def __init__(self, jobs_dir: Path, port: int | None = None, env: dict[str, str] | None = None):
        self.jobs_dir, self.port, self.env = jobs_dir, port or free_port(), env or {}
        self.url = f"http://127.0.0.1:{self.port}/"
        self.proc: subprocess.Popen | None = None
        self.log = jobs_dir.parent / f"app-{self.port}.log"

    def start(self, timeout: float = 120.0) -> AppServer:
        env = {**os.environ, "CSE_JOBS_DIR": str(self.jobs_dir), "PORT": str(self.port), "GRADIO_SERVER_PORT": str(self.port),
               "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", **self.env}
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=ROOT, env=env,
                                     stdout=self.log.open("ab"), stderr=subprocess.STDOUT)
        t0 = time.time()
        while time.time() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(self.url, timeout=2)
                return self
            except OSError:
                time.sleep(0.5)
        self.kill()
        raise TimeoutError(f"app did not start in {timeout} s:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: what a crash or a pulled plug does (no cleanup runs)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


class Visitor:
    """A client with its own cookie jar (a browser), sending whatever headers it likes."""

    def __init__(self, url: str, headers: dict | None = None):
        self.url, self.headers = url, headers or {}
        self.jar = http.cookiejar.CookieJar()
        self.http = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def call(self, api: str, data: list, headers: dict | None = None) -> tuple[str, object]:
        hdrs = {"Content-Type": "application/json", **self.headers, **(headers or {})}
        req = urllib.request.Request(f"{self.url}gradio_api/call/{api}", json.dumps({"data": data}).encode(), hdrs)
        event = json.loads(self.http.open(req, timeout=60).read())["event_id"]
        text = self.http.open(urllib.request.Request(f"{self.url}gradio_api/call/{api}/{event}", headers=hdrs),
                              timeout=120).read().decode()
        return re.findall(r"^event: (\w+)", text, re.M)[-1], json.loads(text.rsplit("data:", 1)[1])
