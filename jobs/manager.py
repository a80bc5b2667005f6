"""Background jobs: a queue and worker threads that run erasures and spectra one at a time (by
default), so a request never waits on training and the page stays responsive.

    manager = JobManager("runs/jobs")
    job_id = manager.submit("erase", {"model": "embedded", "method": "ap", "targets": ["star"],
                                      "presets": "object,fast", "overrides": {"steps": 100}})
    manager.info(job_id).state      # queued -> running -> done
    manager.cancel(job_id); manager.resume(job_id)
"""

from __future__ import annotations

import collections
import copy
import shutil
import threading
import time
import traceback
from pathlib import Path

from backends.cancel import Cancelled, CancelToken
from backends.storage import ensure_writable

from .cost import in_words, job_image_steps
from .limits import Limits
from .store import FINAL, JobFolder, JobInfo, find_job, job_folders
from .tasks import KINDS, vocabulary_words


class QuotaError(ValueError):
    """Too many jobs queued or running (for everyone, or for one visitor); the message says what to do."""


class FairQueue:
    """Jobs waiting for a worker, served in turns by visitor: the next job is the oldest of the visitor
    after the one served last, so one visitor's many jobs never hold back another's (FIFO within a visitor).
    Python callers (client None) count as one visitor."""

    def __init__(self):
        self._waiting: dict[str | None, collections.deque[str]] = {}  # visitor -> its jobs, oldest first
        self._turns: collections.deque[str | None] = collections.deque()  # visitors with jobs, next first
        self._ready = threading.Condition()

    def put(self, job_id: str, client: str | None) -> None:
        with self._ready:
            if client not in self._waiting:
                self._waiting[client] = collections.deque()
                self._turns.append(client)
            self._waiting[client].append(job_id)
            self._ready.notify()

    def get(self) -> str:
        with self._ready:
            self._ready.wait_for(lambda: bool(self._turns))
            client = self._turns.popleft()
            job_id = self._waiting[client].popleft()
            if self._waiting[client]:
                self._turns.append(client)  # its next job waits for everyone else's turn
            else:
                del self._waiting[client]
            return job_id

    def remove(self, job_id: str) -> bool:
        """Take a waiting job out of the queue; False when it is not waiting (a worker has it, or never)."""
        with self._ready:
            for client, jobs in self._waiting.items():
                if job_id in jobs:
                    jobs.remove(job_id)
                    if not jobs:
                        del self._waiting[client]
                        self._turns.remove(client)
                    return True
        return False

    def position(self, job_id: str) -> int | None:
        """How many jobs the worker takes before this one (0: next), or None when it is not waiting."""
        with self._ready:
            turns = [list(self._waiting[c]) for c in self._turns]
        order = [q[i] for i in range(max(map(len, turns), default=0)) for q in turns if i < len(q)]
        return order.index(job_id) if job_id in order else None


class JobManager:
    def __init__(self, root: str | Path, workers: int = 1, limits: Limits | None = None):
        self.root = Path(root)
        ensure_writable(self.root, "set CSE_JOBS_DIR to a writable folder for job folders")
        self.limits = limits  # None: no quotas (scripts, tests); the app passes Limits.from_env()
        self._queue = FairQueue()
        self._live: dict[str, CancelToken] = {}  # queued or running in this process -> its cancel token
        # live job -> (kind, client, address, image-steps it samples: jobs.cost)
        self._owners: dict[str, tuple[str, str | None, str | None, int]] = {}
        self._submits: collections.deque[tuple[float, str | None, str | None]] = collections.deque()  # (t, client, address)
        self._snapshot: tuple[float, list[tuple[JobInfo, str | None]]] | None = None  # (made at, [(job, owner)]): jobs()
        self._submitting = threading.Lock()  # quota check, folder creation and enqueue happen as one
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._threads = [threading.Thread(target=self._work, name=f"job-worker-{i}", daemon=True)
                         for i in range(workers)]
        for t in self._threads:
            t.start()

    # ------------------------------------------------------------------ requests
    def submit(self, kind: str, params: dict, client: str | None = None, address: str | None = None) -> str:
        """Check the request (ValueError with a fix-it message if bad) and the quotas, then queue it;
        returns the job id. `client` is an opaque key of the visitor asking and `address` of its network
        address (ui.visitors; None: a Python caller, no quota)."""
        if kind not in KINDS:
            raise ValueError(f"unknown job kind {kind!r}; valid: {', '.join(KINDS)}")
        params = copy.deepcopy(params)  # stored as asked, whatever the caller does with its dict afterwards
        with self._submitting:
            self._check_quota(kind, client, address)
            self._count_submit(client, address)  # counted before the check: a refused or failing job costs too
            # resolved once, here; the worker runs the stored resolution (nothing is written for a bad request)
            checked = KINDS[kind].check(params, self.root, self.limits)
            if kind == "spectrum":  # the erasure's step limit is the request's own check
                self._check_concepts(vocabulary_words(params, checked.total))
            cost = job_image_steps(kind, params, checked.total)
            self._check_cost(cost, client)
            self._make_room(client)
            job = JobFolder.create(self.root, kind, params, checked.title, client, resolved=checked.resolved)
            job.set_state("queued", 0, checked.total)
            self._enqueue(job.id, kind, client, address, cost)
        return job.id

    def resume(self, job_id: str, client: str | None = None, address: str | None = None) -> str:
        """Queue an interrupted, cancelled or failed job again; it continues from its last checkpoint.
        Only its owner (or a Python caller) may."""
        job = self._owned(job_id, client, "resume it")
        with self._submitting:
            info = self.info(job.id)
            if info.state not in ("interrupted", "cancelled", "failed"):
                raise ValueError(f"job {job.id} is {info.state}; only interrupted, cancelled or failed jobs resume")
            self._check_quota(job.kind, client, address)
            self._count_submit(client, address)
            cost = job_image_steps(job.kind, job.record["params"], info.total)  # counted again: it samples again
            self._check_cost(cost, client)
            job.set_state("queued", info.step, info.total, "resuming")
            self._enqueue(job.id, job.kind, client, address, cost)
        return job.id

    def rerun(self, job_id: str, client: str | None = None, address: str | None = None) -> str:
        """A new job with the same parameters (checked and queued like any request); returns its id.
        Only its owner (or a Python caller) may: a shared link grants viewing, not running."""
        job = self._owned(job_id, client, "run it again")
        return self.submit(job.kind, job.record["params"], client, address)

    def delete(self, job_id: str, client: str | None = None) -> None:
        """Remove a job that is not queued or running, with its folder (run, spectrum, downloads). A visitor
        (`client` given) may only delete the jobs they started."""
        job = self._owned(job_id, client, "delete it")
        with self._submitting, self._lock:  # not while it is being resumed
            if job.id in self._live:
                raise ValueError(f"job {job.id} is queued or running; cancel it first, then delete it")
            shutil.rmtree(job.path)
            self._snapshot = None  # the next listing must not show it

    def view(self, job_id: str, client: str | None = None) -> JobFolder:
        """The job's folder if `client` may see it (JobFolder.viewable_by); the same message whether it does
        not exist or is someone else's, so ids cannot be probed."""
        job = find_job(self.root, job_id)
        if not job.viewable_by(client):
            raise KeyError(f"no job {job.id!r}; pick one from the job list")
        return job

    def _owned(self, job_id: str, client: str | None, action: str) -> JobFolder:
        job = self.view(job_id, client)
        if not job.changeable_by(client):
            if job.owner is None:
                raise ValueError(f"job {job.id} is a shared example; it can be viewed, not changed")
            raise ValueError(f"job {job.id} was started by another visitor; only they can {action}")
        return job

    def cancel(self, job_id: str, client: str | None = None) -> None:
        """Stop a queued or running job; a running erasure checkpoints first, so it can be resumed.
        A visitor (`client` given) may only cancel the jobs they started."""
        job = self._owned(job_id, client, "cancel it")
        with self._lock:
            token = self._live.get(job.id)
        if token is None:
            raise ValueError(f"job {job.id} is not queued or running in this app; nothing to cancel")
        token.cancel()
        if self._queue.remove(job.id):  # still waiting: cancelled at once, not when a worker reaches it
            st = job.state()
            job.set_state("cancelled", st.get("step", 0), st.get("total", 0), "cancelled before it started; resume to run it")
            self._forget(job.id)
            self._snapshot = None  # the next listing shows it cancelled

    def position(self, job_id: str) -> int | None:
        """Jobs the worker takes before this queued one (0: it is next); None when it is not waiting."""
        return self._queue.position(job_id)

    def _check_concepts(self, words: int) -> None:
        if self.limits is not None and words > self.limits.max_concepts:
            raise QuotaError(f"this spectrum job has {words:,} concepts; the limit on this server is "
                             f"{self.limits.max_concepts:,}: set 'First N words', or a smaller vocabulary")

    def _check_cost(self, cost: int, client: str | None) -> None:
        """A job's sampling, and a visitor's queued and running jobs' together, against the budgets."""
        if self.limits is None or not cost:
            return
        cap = self.limits.max_job_image_steps
        if cost > cap:
            raise QuotaError(f"this spectrum would sample {in_words(cost)}; the limit on this server is {cap:,}: "
                             "lower k, the sampler steps or 'First N words', or make it proxy-guided or proxy only")
        with self._lock:
            mine = sum(cost for _, c, _, cost in self._owners.values() if c == client)
        if client is not None and mine + cost > 2 * cap:
            raise QuotaError(f"your queued and running jobs already sample {in_words(mine)}; with this one that is "
                             f"more than {2 * cap:,}: wait for one to finish, or cancel one")

    def _check_quota(self, kind: str, client: str | None, address: str | None) -> None:
        """Jobs queued or running (all, per visitor, per address), jobs asked for in the last hour (per
        visitor, and twice that per address; refused and failed ones included) and job folders kept."""
        if self.limits is None:
            return
        with self._lock:
            owners = list(self._owners.values())
        cap, lim = self.limits.active_cap(kind), self.limits
        if sum(k == kind for k, _, _, _ in owners) >= cap:
            raise QuotaError(f"{cap} {kind} jobs are already queued or running on this server (the limit); "
                             "wait for one to finish and try again")
        if client is not None and sum(c == client for _, c, _, _ in owners) >= lim.max_jobs_per_client:
            raise QuotaError(f"you already have {lim.max_jobs_per_client} jobs queued or running (the limit per "
                             "visitor); wait for one to finish or cancel one, then try again")
        if address is not None and sum(a == address for _, _, a, _ in owners) >= 2 * lim.max_jobs_per_client:
            raise QuotaError(f"your network address already has {2 * lim.max_jobs_per_client} jobs queued or "
                             "running (the limit per address); wait for one to finish, then try again")
        hour = self._recent_submits()
        if (client is not None and sum(c == client for c, _ in hour) >= lim.max_jobs_per_hour) or (
                address is not None and sum(a == address for _, a in hour) >= 2 * lim.max_jobs_per_hour):
            raise QuotaError(f"you asked for {lim.max_jobs_per_hour} jobs in the last hour (the limit, refused and "
                             "failed ones included); try again later")
        if client is not None:
            kept = sum(j.owner == client for j in job_folders(self.root))
            if kept >= lim.max_job_folders_per_client:
                raise QuotaError(f"you have {kept} jobs on this server (the limit per visitor); delete finished "
                                 "ones in the Jobs tab, then try again")

    def _recent_submits(self) -> list[tuple[str | None, str | None]]:
        with self._lock:
            while self._submits and time.monotonic() - self._submits[0][0] > 3600:
                self._submits.popleft()
            return [(c, a) for _, c, a in self._submits]

    def _count_submit(self, client: str | None, address: str | None) -> None:
        if self.limits is not None and (client is not None or address is not None):
            with self._lock:
                self._submits.append((time.monotonic(), client, address))

    def _make_room(self, client: str | None) -> None:
        """At most max_job_folders job folders: a visitor's new job expires the oldest finished jobs of
        visitors (public and live ones stay); refused when none can go."""
        if self.limits is None or client is None:
            return
        folders = job_folders(self.root)  # newest first
        excess = len(folders) + 1 - self.limits.max_job_folders
        with self._lock:
            live = set(self._live)
        for job in reversed(folders):
            if excess <= 0:
                break
            if job.owner is not None and job.id not in live and job.state().get("state") in FINAL:
                shutil.rmtree(job.path, ignore_errors=True)
                excess -= 1
        self._snapshot = None
        if excess > 0:
            raise QuotaError(f"this server holds {self.limits.max_job_folders} jobs (the limit) and none can expire "
                             "yet; try again later")

    # ------------------------------------------------------------------ queries
    def info(self, job_id: str) -> JobInfo:
        job = find_job(self.root, job_id)
        with self._lock:
            live = job_id in self._live
        return job.info(live)

    def jobs(self, kind: str | None = None, max_age: float = 0.0, client: str | None = None) -> list[JobInfo]:
        """Every job (of `kind`) that `client` owns or that is public (all of them for a Python caller),
        newest first. `max_age` > 0 reuses a listing made at most that many seconds ago: the app's live
        updates, where one scan of the jobs folder serves every open tab."""
        with self._lock:
            snapshot = self._snapshot
        if snapshot is None or max_age <= 0 or time.monotonic() - snapshot[0] > max_age:
            with self._lock:
                live = set(self._live)
            snapshot = (time.monotonic(), [(j.info(j.id in live), j.owner) for j in job_folders(self.root)])
            with self._lock:
                self._snapshot = snapshot
        return [j for j, owner in snapshot[1] if (kind is None or j.kind == kind)
                and (client is None or owner in (None, client))]

    def folder(self, job_id: str) -> JobFolder:
        return find_job(self.root, job_id)

    def wait(self, job_id: str, timeout: float | None = None) -> JobInfo:
        """Block until the job leaves the queue (tests, scripts)."""
        with self._idle:
            self._idle.wait_for(lambda: job_id not in self._live, timeout)
        return self.info(job_id)

    # ------------------------------------------------------------------ worker
    def _enqueue(self, job_id: str, kind: str, client: str | None, address: str | None = None, cost: int = 0) -> None:
        with self._lock:
            if job_id in self._live:
                raise ValueError(f"job {job_id} is already queued or running")
            self._live[job_id] = CancelToken(background=True)  # gives way to interactive sampling
            self._owners[job_id] = (kind, client, address, cost)
        self._queue.put(job_id, client)

    def _work(self) -> None:
        while True:
            job_id = self._queue.get()
            try:
                self._run(job_id)
            finally:
                self._forget(job_id)

    def _forget(self, job_id: str) -> None:
        """A job leaves the live set (finished, failed, cancelled): quotas free, waiters wake."""
        with self._idle:
            self._live.pop(job_id, None)
            self._owners.pop(job_id, None)
            self._idle.notify_all()

    def _run(self, job_id: str) -> None:
        job = find_job(self.root, job_id)
        token = self._live[job_id]
        st = job.state()
        total = st.get("total", 0)
        if token.cancelled:  # cancelled while still queued
            job.set_state("cancelled", st.get("step", 0), total, "cancelled before it started; resume to run it")
            return

        t0, before = time.monotonic(), st.get("run_s", 0.0)  # earlier attempts' running time

        def ran() -> float:
            return before + time.monotonic() - t0

        def report(step: int, tot: int, message: str, phase: str = "", eta_s: float | None = None) -> None:
            job.set_state("running", step, tot or total, message, ran(), phase=phase, eta_s=eta_s)

        report(st.get("step", 0), total, "starting")
        try:
            KINDS[job.kind].run(job, token, report)
        except Cancelled as e:
            job.set_state("cancelled", self._step(job), total, f"{e}", ran())
        except Exception as e:  # noqa: BLE001 - the job fails, the app and the other jobs go on
            job.set_state("failed", self._step(job), total, f"{type(e).__name__}: {e}", ran())
            job.save_error(traceback.format_exc())
        else:
            done = max(total, self._step(job))  # a vocabulary known only when it runs may exceed the first count
            job.set_state("done", done, done, "finished", ran(), phase="")  # no phase left to show

    @staticmethod
    def _step(job: JobFolder) -> int:
        return job.info(live=True).step



__all__ = ["FINAL", "JobManager", "QuotaError"]
