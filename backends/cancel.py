"""Cancellation and turn-taking for every long loop of every layer (docs/design.md §1: the bottom floor).

A loop (an erasure's steps, a sampler's steps) calls `token.give_way()` at each step, then raises (or, an
erasure, checkpoints and raises) Cancelled once `token.cancelled`; a *background* token (jobs, Compare) waits
in give_way while a visitor's interactive sampling (Generate, Load) runs, so a page that waits on a 1-image Generate is not
slowed by the heavy work of others (README, "On a shared machine"). `FairTurns` makes interactive requests
of different visitors take turns step by step, each on its own fork of the pipeline (`fork`).
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time


class Cancelled(RuntimeError):
    """Raised when work was cancelled; an erasure's run folder holds a checkpoint to resume from."""


class Priority:
    """How many interactive samplings are under way; background work waits at its safe points while any is
    (at most `max_wait_s` at a time: a stream of them slows background work to a step per max_wait_s, never
    stops it)."""

    def __init__(self, max_wait_s: float = 2.0):
        self.max_wait_s = max_wait_s
        self._active = 0
        self._cond = threading.Condition()

    @contextlib.contextmanager
    def interactive(self):
        with self._cond:
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                self._cond.notify_all()

    def yield_to_interactive(self) -> float:
        """Wait while interactive sampling runs; the seconds waited."""
        t0 = time.monotonic()
        with self._cond:
            self._cond.wait_for(lambda: self._active == 0, timeout=self.max_wait_s)
        return time.monotonic() - t0


PRIORITY = Priority()  # one per process: the app's interactive and background work share the machine


class CancelToken:
    """Thread-safe cancel flag: the app's worker or a Stop button sets it, the loop polls it each step.
    `background`: the loop also gives way to interactive sampling at each step (PRIORITY)."""

    def __init__(self, background: bool = False, turns: FairTurns | None = None) -> None:
        self._flag = threading.Event()
        self.background = background
        self.turns = turns  # interactive sampling: pass the turn to a waiting visitor at each step

    def cancel(self) -> None:
        self._flag.set()

    @property
    def cancelled(self) -> bool:
        return self._flag.is_set()

    def give_way(self) -> None:
        """A loop's safe point, before it checks `cancelled`: a background token waits for interactive sampling,
        an interactive one passes its turn to a waiting visitor."""
        if self.background:
            PRIORITY.yield_to_interactive()
        if self.turns is not None:
            self.turns.pass_turn()


class FairTurns:
    """A lock taken in turns, weighted by cost (start-time fair queueing): each turn-taker says what a step
    of its work costs (e.g. the images it samples at once); the next turn goes to whoever waits with the
    least work done since it arrived, so a 1-image Generate runs two steps for each step of a 2-image one
    and every visitor gets an equal share of the machine, whatever the size of the others' requests."""

    def __init__(self):
        self._waiting: dict[object, tuple[float, int]] = {}  # waiter -> (virtual start, arrival order)
        self._busy = False
        self._clock = 0.0  # virtual start of the turn being served: where newcomers start
        self._arrivals = itertools.count()
        self._cond = threading.Condition()
        self._local = threading.local()  # the holder's (virtual start, cost), per thread

    def _wait_turn(self, start: float) -> None:  # with self._cond held
        me = object()
        self._waiting[me] = (start, next(self._arrivals))
        self._cond.notify_all()
        self._cond.wait_for(lambda: not self._busy and min(self._waiting, key=self._waiting.__getitem__) is me)
        del self._waiting[me]
        self._busy, self._clock = True, start

    @contextlib.contextmanager
    def turn(self, cost: float = 1.0):
        """Hold the lock for one piece of work whose steps each cost `cost` (pass_turn between steps)."""
        with self._cond:
            start = self._clock
            self._wait_turn(start)
            self._local.held = [start, float(cost)]
        try:
            yield
        finally:
            self._local.held = None
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    def pass_turn(self) -> None:
        """From inside a turn (a step done): charge its cost, and let whoever has done less go first."""
        held = getattr(self._local, "held", None)
        if held is None:  # not inside a turn of this thread: nothing to pass
            return
        held[0] += held[1]
        with self._cond:
            self._clock = held[0]  # newcomers start here, not with the credit of work they did not wait for
            if self._waiting and min(s for s, _ in self._waiting.values()) <= held[0]:
                self._busy = False
                self._wait_turn(held[0])


def fork(pipe):
    """A pipeline that shares `pipe`'s models but has its own scheduler and call state, so two samplings can
    take turns step by step on one set of weights (a diffusers pipeline keeps its timesteps and per-call
    settings on itself and its scheduler)."""
    import copy

    forked = copy.copy(pipe)
    forked.scheduler = copy.deepcopy(pipe.scheduler)
    return forked
