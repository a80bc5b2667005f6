"""Who a visitor is and whose jobs it may touch (ui.visitors, JobManager's access rules): identity is a
cookie the server signed, never a header; a job is changed only by its owner and seen by its owner or
whoever holds its (unguessable) id; quotas hold per visitor and per address however the headers lie."""

import json
import re

import pytest

from jobs import JobManager, Limits, QuotaError
from tests.app_server import AppServer, Visitor
from ui import visitors

ESD = {"model": "embedded", "method": "esd", "targets": ["star"], "presets": "object,fast"}


# ---------------------------------------------------------------------------- identity
def test_a_signed_visitor_id_cannot_be_forged():
    signer, other = visitors.Signer(b"server secret"), visitors.Signer(b"another server")
    value = signer.new()
    vid = signer.verify(value)
    assert vid is not None and len(vid) == 32
    assert other.verify(value) is None  # another secret's signature
    forged = vid[:-1] + ("0" if vid[-1] != "0" else "1") + value[32:]  # another id, the same signature
    for bad in (forged, vid, vid + ".", value + "x", "", None, "a.b", value.replace(".", "..")):
        assert signer.verify(bad) is None, bad


@pytest.mark.parametrize("peer, forwarded, proxies, expected", [
    ("1.2.3.4", "", [], "1.2.3.4"),
    ("1.2.3.4", "9.9.9.9", [], "1.2.3.4"),  # a header from an untrusted peer is ignored
    ("10.0.0.2", "9.9.9.9, 5.6.7.8", ["10.0.0.0/8"], "5.6.7.8"),  # the entry the trusted proxy appended
    ("10.0.0.2", "5.6.7.8, 10.0.0.9", ["10.0.0.0/8"], "5.6.7.8"),  # walking back over two trusted proxies
    ("10.0.0.2", "", ["10.0.0.0/8"], "10.0.0.2"),
])
def test_the_address_is_the_one_a_trusted_proxy_saw(peer, forwarded, proxies, expected):
    import ipaddress

    nets = [ipaddress.ip_network(p) for p in proxies]
    assert visitors.client_address(peer, forwarded, nets) == expected


def test_bad_trusted_proxies_stop_the_app(monkeypatch):
    monkeypatch.setenv("CSE_TRUSTED_PROXIES", "10.0.0.0/8 not-an-address")
    with pytest.raises(ValueError, match="CSE_TRUSTED_PROXIES must list addresses"):
        visitors.trusted_proxies()


# ---------------------------------------------------------------------------- the manager's rules
def test_only_the_owner_changes_a_job_and_others_see_it_only_by_its_full_id(tmp_path):
    manager = JobManager(tmp_path / "jobs", workers=0)  # nothing runs: jobs stay queued
    job = manager.submit("erase", {**ESD, "overrides": {"steps": 2}}, client="v-alice")
    assert re.fullmatch(r"erase-\d{8}-\d{6}-\d{3}-[0-9a-f]{16}", job)
    assert [j.id for j in manager.jobs(client="v-bob")] == []  # not listed to others
    assert manager.view(job, "v-bob").id == job  # the full id is a link that grants viewing
    guessable = job.rsplit("-", 1)[0]  # what a visitor could guess from the time alone
    with pytest.raises(KeyError, match="no job"):
        manager.view(guessable, "v-bob")
    for act in (manager.cancel, manager.delete, manager.resume, manager.rerun):
        with pytest.raises(ValueError, match="another visitor; only they can"):
            act(job, "v-bob")
    manager.cancel(job, "v-alice")
    public = manager.submit("erase", {**ESD, "overrides": {"steps": 2}})  # from Python: a public example
    assert {j.id for j in manager.jobs(client="v-bob")} == {public}
    with pytest.raises(ValueError, match="shared example; it can be viewed, not changed"):
        manager.delete(public, "v-bob")


def test_an_old_guessable_id_is_shown_to_its_owner_only(tmp_path):
    manager = JobManager(tmp_path / "jobs", workers=0)
    job = manager.folder(manager.submit("erase", {**ESD, "overrides": {"steps": 2}}, client="v-alice"))
    old = job.path.rename(job.path.parent / job.id.rsplit("-", 1)[0]).name  # a folder made before ids had tokens
    assert manager.view(old, "v-alice").id == old
    with pytest.raises(KeyError, match="no job"):
        manager.view(old, "v-bob")


def test_quotas_hold_per_address_and_count_failed_requests(tmp_path):
    limits = Limits(max_jobs_per_client=2, max_jobs_per_hour=3, max_active_erase=10)
    manager = JobManager(tmp_path / "jobs", workers=0, limits=limits)
    request = {**ESD, "overrides": {"steps": 2}}
    for visitor in ("v-1", "v-2", "v-3", "v-5"):  # a fresh cookie each time: new visitors, the same address
        manager.submit("erase", request, visitor, "a-mallory")
    with pytest.raises(QuotaError, match="your network address already has 4 jobs"):
        manager.submit("erase", request, "v-6", "a-mallory")
    with pytest.raises(ValueError, match="does not know 'unicorn'"):
        manager.submit("erase", {**request, "targets": ["unicorn"]}, "v-4", "a-other")
    with pytest.raises(ValueError, match="does not know 'unicorn'"):
        manager.submit("erase", {**request, "targets": ["unicorn"]}, "v-4", "a-other")
    manager.submit("erase", request, "v-4", "a-other")  # the third request of the hour
    with pytest.raises(QuotaError, match="you asked for 3 jobs in the last hour"):
        manager.submit("erase", request, "v-4", "a-other")


def test_job_folders_are_capped_and_the_oldest_finished_expire(tmp_path):
    limits = Limits(max_job_folders=3, max_job_folders_per_client=2, max_jobs_per_client=5, max_active_erase=10)
    request = {**ESD, "overrides": {"steps": 2}}
    first = JobManager(tmp_path / "jobs", workers=0, limits=limits).submit("erase", request, "v-a")
    manager = JobManager(tmp_path / "jobs", workers=0, limits=limits)  # after a restart: `first` is not live
    manager.folder(first).set_state("done")
    manager.submit("erase", request, "v-a")
    with pytest.raises(QuotaError, match="you have 2 jobs on this server"):
        manager.submit("erase", request, "v-a")
    public = manager.submit("erase", request)  # Python's (public) jobs never expire
    manager.submit("erase", request, "v-b")  # the fourth folder: v-a's finished job makes room
    ids = {j.id for j in manager.jobs()}
    assert first not in ids and public in ids and len(ids) == 3


# ---------------------------------------------------------------------------- over HTTP, two browsers
FORGED = ["{a}", "{a}, 1.2.3.4", "1.2.3.4, {a}", "{a},{a}", " {a} "]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    server = AppServer(tmp_path_factory.mktemp("visitors") / "jobs", env={"CSE_MAX_JOBS_PER_CLIENT": "2"}).start()
    yield server
    server.kill()


@pytest.mark.slow
def test_a_hostile_visitor_cannot_touch_another_visitors_job(served):
    alice, bob = Visitor(served.url, {"X-Forwarded-For": "203.0.113.7"}), Visitor(served.url)
    kind, out = alice.call("erase_start", ["embedded", "esd", "star", "object", "fast", "xattn", 2000, 1e-5, 0])
    assert kind == "complete", out
    job = out[0]
    assert alice.call("erase_status", [job])[0] == "complete"
    guessable = job.rsplit("-", 1)[0]
    for form in FORGED:  # Bob claims Alice's address every way tried before
        headers = {"X-Forwarded-For": form.format(a="203.0.113.7")}
        kind, rows = bob.call("job_list", ["all", "all"], headers)
        assert kind == "complete" and job not in json.dumps(rows)
        for api, data in (("erase_status", [guessable]), ("results", [guessable]), ("download_delta", [guessable]),
                          ("job_cancel", [job]), ("job_resume", [job]), ("job_rerun", [job]), ("job_delete", [job]),
                          ("job_cancel", [guessable]), ("job_delete", [guessable])):
            kind, out = bob.call(api, data, headers)
            assert kind == "error", (api, form, out)
    # a shared link (the full id) lets Bob view the job, never change it
    assert bob.call("erase_status", [job])[0] == "complete"
    kind, out = alice.call("erase_status", [job])
    assert kind == "complete" and ("running" in out[0] or "queued" in out[0]), out
    assert alice.call("job_cancel", [job])[0] == "complete"


@pytest.mark.slow
def test_rotating_headers_and_cookies_does_not_beat_the_quota(served):
    accepted = 0
    for i in range(6):
        mallory = Visitor(served.url, {"X-Forwarded-For": f"198.51.100.{i}"})  # a new cookie and a new header each time
        kind, out = mallory.call("erase_start", ["embedded", "esd", "star", "object", "fast", "xattn", 2000, 1e-5, 0])
        accepted += kind == "complete"
        if kind == "error":
            assert "limit per address" in json.dumps(out) or "already queued" in json.dumps(out), out
    assert accepted <= 4  # twice the per-visitor limit of 2, for the one address they all come from


def test_a_spectrum_that_would_take_hours_is_refused_with_its_cost(tmp_path):
    limits = Limits(max_job_image_steps=10_000, max_concepts=5000)
    manager = JobManager(tmp_path / "jobs", workers=0, limits=limits)
    big = {"model": "embedded", "targets": ["star"], "config": {"vocab": "world", "k": 16, "steps": 100}}
    with pytest.raises(QuotaError, match=r"would sample 86,400 image-steps .* lower k"):
        manager.submit("spectrum", big, "v-a")  # 27 concepts x 16 x 100 x 2 models
    small = {"model": "embedded", "targets": ["star"], "config": {"vocab": "world", "k": 2, "steps": 25}}
    manager.submit("spectrum", small, "v-a")  # 2,700
    manager.submit("spectrum", {**small, "config": {**small["config"], "proxy_only": True}}, "v-a")  # costs nothing
    assert len(manager.jobs()) == 2


def test_a_resumed_spectrum_counts_toward_its_visitors_sampling_budget(tmp_path):
    limits = Limits(max_job_image_steps=3_000, max_concepts=5000, max_jobs_per_client=5)  # 6,000 per visitor
    manager = JobManager(tmp_path / "jobs", workers=0, limits=limits)
    job = {"model": "embedded", "targets": ["star"], "config": {"vocab": "world", "k": 2, "steps": 25}}  # 2,700
    first = manager.submit("spectrum", job, "v-a")
    manager.cancel(first, "v-a")  # cancelled while queued: it no longer counts ...
    second = manager.submit("spectrum", job, "v-a")
    manager.submit("spectrum", job, "v-a")  # 5,400
    manager.cancel(second, "v-a")
    manager.resume(second, "v-a")  # ... and counts again once resumed: 5,400 (2,700 if it were free)
    with pytest.raises(QuotaError, match="already sample 5,400 image-steps"):
        manager.resume(first, "v-a")


def test_a_guided_spectrum_costs_its_share_plus_every_target_and_the_neutral_rows():
    from jobs.cost import job_image_steps

    guided = {"vocab": "world", "k": 2, "steps": 10, "delta_top": 3, "delta_text": 2}
    one = job_image_steps("spectrum", {"targets": ["star"], "config": guided}, 27)
    three = job_image_steps("spectrum", {"targets": ["star", "moon", "heart"], "config": guided}, 27)
    assert one == (5 + 1 + 2) * 2 * 10 * 2 and three == (5 + 3 + 2) * 2 * 10 * 2


def test_jobs_of_different_visitors_take_turns_and_a_queued_cancel_is_at_once(tmp_path):
    manager = JobManager(tmp_path / "jobs", workers=0)
    request = {**ESD, "overrides": {"steps": 2}}
    a1, a2, a3 = (manager.submit("erase", request, "v-a") for _ in range(3))
    b1 = manager.submit("erase", request, "v-b")
    assert manager.position(a1) == 0 and manager.position(b1) == 1 and manager.position(a3) == 3
    manager.cancel(a2, "v-a")
    assert manager.info(a2).state == "cancelled" and manager.position(a2) is None and manager.position(a3) == 2
    manager.delete(a2, "v-a")  # no longer live: it can go at once


def test_a_queued_jobs_view_says_where_it_waits(tmp_path, monkeypatch):
    from ui import erase_tab, state

    manager = JobManager(tmp_path / "jobs", workers=0)
    monkeypatch.setattr(state, "_manager", manager)
    request = {**ESD, "overrides": {"steps": 2}}
    a, b, c = (manager.submit("erase", request, v) for v in ("v-a", "v-a", "v-b"))
    assert "next in the queue" in erase_tab.erase_view(a, manager.info(a))[0]
    assert "1 job ahead in the queue" in erase_tab.erase_view(c, manager.info(c))[0]  # visitors take turns
    assert "2 jobs ahead in the queue" in erase_tab.erase_view(b, manager.info(b))[0]


def test_the_sampling_budget_refills_and_lets_one_large_request_through(monkeypatch):
    from types import SimpleNamespace

    from ui import state

    clock = [1000.0]
    monkeypatch.setattr(state.time, "monotonic", lambda: clock[0])
    budget = state.StepBudget(600)  # 10 image-steps a second
    alice = SimpleNamespace(headers={}, client=SimpleNamespace(host="192.0.2.1"))
    budget.spend(alice, 500)
    with pytest.raises(QuotaError, match="try again in 40 s"):
        budget.spend(alice, 500)  # 100 left, 500 needed: 40 s of refill
    clock[0] += 40
    budget.spend(alice, 500)
    clock[0] += 60  # full again
    budget.spend(alice, 5000)  # larger than the bucket: runs on a full one ...
    with pytest.raises(QuotaError, match="try again in 441 s"):
        budget.spend(alice, 1)  # ... and leaves it 4,400 below zero: 440.1 s of refill, shown rounded up
    bob = SimpleNamespace(headers={}, client=SimpleNamespace(host="192.0.2.2"))
    with pytest.raises(QuotaError):
        budget.spend(bob, 1)  # outside the app (no cookie middleware) every caller is one anonymous visitor


def test_turns_give_a_lighter_request_as_much_machine_as_a_heavier_one():
    import threading
    import time

    from backends.cancel import FairTurns

    turns, order = FairTurns(), []

    def work(label: str, cost: int, steps: int, entered=None):
        with turns.turn(cost=cost):
            if entered is not None:
                entered.set()
                while not turns._waiting:  # hold the turn until the other visitor waits for one
                    time.sleep(0.001)
            for _ in range(steps):
                order.append(label)
                turns.pass_turn()

    entered = threading.Event()
    heavy = threading.Thread(target=work, args=("H", 2, 4, entered))
    heavy.start()
    entered.wait()
    light = threading.Thread(target=work, args=("L", 1, 6))
    light.start()
    heavy.join(), light.join()
    # two 1-image steps for each 2-image step while both wait (equal image-steps each); a FIFO or plain
    # alternation would give H L H L ...
    assert "".join(order) == "HLLHLLHLLH"
