"""Reading a run's events back: progress with ETA, the concept search's history (softmax(pi), the
sampled concept, every centre's loss) and the trajectory image strips (AP paper figure 6), as data; the
app draws them (ui.plots). Works on a live run folder too."""

from __future__ import annotations

from pathlib import Path

from .runs import RunFolder

ETA_WINDOW = 20  # recent steps whose median duration the ETA uses (a checkpoint or one slow step does not swing it)


def progress(events: list[dict], snapshot_every: int = 0) -> dict:
    """Step, total, ETA, current concept and top-5, and the phase ("training" | "picture": a snapshot is being
    drawn | "finishing" | "done").

    Measured since the latest start or resume: ETA = remaining steps x the median duration of the last
    ETA_WINDOW steps + remaining snapshots (every `snapshot_every` steps) x their mean duration, so the
    snapshots' sampling is counted instead of being spread over the steps (which made the ETA climb). After
    the last step and before "done" the run is "finishing" (last snapshot, result save)."""
    out: dict = {"step": 0, "total": 0, "eta_s": None, "concept": None, "top5": [], "losses": {}, "phase": "training",
           "resumed_at": None, "untimed_pictures": 0}
    starts = [i for i, e in enumerate(events) if e["kind"] == "start"]
    if not starts:
        return out
    start, run = events[starts[-1]], events[starts[-1]:]
    out["total"] = start["total"]
    if len(starts) > 1:  # resumed: the events after the checkpoint were dropped and are being run again
        out["resumed_at"] = start["step"]
    steps = [e for e in run if e["kind"] == "step"]
    if steps:
        last = steps[-1]
        out.update(step=last["step"], concept=last.get("concept"), top5=last.get("top5", []),
                   losses=last.get("losses", {}))
        out["eta_s"] = _eta(run, last["step"], last["total"], snapshot_every)
        left = sum(1 for s in range(last["step"] + 1, last["total"] + 1) if snapshot_every and s % snapshot_every == 0)
        # pictures still to draw while none has been timed in this run: the ETA counts each as a step
        out["untimed_pictures"] = left if left and not any(e["kind"] == "snapshot" for e in run) else 0
        if snapshot_every and run[-1] is last and (last["step"] % snapshot_every == 0 or last["step"] == 1):
            out["phase"] = "picture"  # the step's snapshot is being drawn (its event comes when it is done)
        elif last["step"] >= last["total"]:
            out["phase"] = "finishing"
    if any(e["kind"] == "done" for e in events):
        out.update(step=out["total"], eta_s=0.0, phase="done")
    return out


def _eta(run: list[dict], step: int, total: int, snapshot_every: int) -> float | None:
    """Seconds left: each event's duration is its elapsed time minus the previous event's."""
    durations: dict[str, list[float]] = {"step": [], "snapshot": []}
    for prev, e in zip(run, run[1:]):
        if e["kind"] in durations:
            durations[e["kind"]].append(max(0.0, e["elapsed_s"] - prev["elapsed_s"]))
    recent = sorted(durations["step"][-ETA_WINDOW:])
    if not recent:
        return None
    per_step = recent[len(recent) // 2]
    snaps = durations["snapshot"]
    left = sum(1 for s in range(step + 1, total + 1) if snapshot_every and s % snapshot_every == 0)
    per_snap = sum(snaps) / len(snaps) if snaps else per_step  # before the first one: a step's worth
    return round((total - step) * per_step + left * per_snap, 1)


def search_history(events: list[dict]) -> dict[str, dict]:
    """Per target prompt of a concept search (AP, AGE): the centres' words, and per step softmax(pi),
    the sampled concept and its preservation loss; at snapshots, every centre's loss (docs/design.md §3.3).
    {prompt: {"words": [n], "steps": [S], "probs": [S][n], "sampled": [S], "l2": [S],
              "snap_steps": [K], "centre_l2": [K][n]}}; {} for runs that search nothing."""
    starts = [e for e in events if e["kind"] == "start" and e.get("extra", {}).get("search")]
    if not starts:
        return {}
    out = {p: {"words": w, "steps": [], "probs": [], "sampled": [], "l2": [], "snap_steps": [], "centre_l2": []}
           for p, w in starts[-1]["extra"]["search"].items()}
    for e in events:
        h = out.get(e.get("message"))
        if e["kind"] == "step" and h is not None and "probs" in e.get("extra", {}):
            h["steps"].append(e["step"])
            h["probs"].append(e["extra"]["probs"])
            h["sampled"].append(e.get("sampled"))
            h["l2"].append(e.get("losses", {}).get("l2", e.get("losses", {}).get("keep")))
        for p, losses in (e.get("extra", {}).get("centre_l2", {}) if e["kind"] == "snapshot" else {}).items():
            if p in out:
                out[p]["snap_steps"].append(e["step"])
                out[p]["centre_l2"].append(losses)
    return out


def snapshot_strips(run: str | Path | RunFolder, events: list[dict] | None = None) -> dict[str, list[tuple[int, Path]]]:
    """name ("target", "adversarial", ...) -> [(step, image file)] in step order; `events`: the run's
    events when the caller has read them already."""
    run = run if isinstance(run, RunFolder) else RunFolder.open(run)
    strips: dict[str, list[tuple[int, Path]]] = {}
    for e in run.events() if events is None else events:
        if e["kind"] == "snapshot":
            for name, rel in e.get("images", {}).items():
                if (run.path / rel).exists():
                    strips.setdefault(name, []).append((e["step"], run.path / rel))
    return strips
