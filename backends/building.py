"""Building torch modules is serialised within a process (docs/design.md §1 "Loading is serialised").

diffusers builds each model of a pipeline inside accelerate's `init_empty_weights`, which swaps
`nn.Module.register_parameter` for the whole process, not for one thread. While one thread loads a
pipeline, a module built in another thread (a second pipeline, the CLIP scorer, MCE's masks) gets its
parameters on the meta device; and two loads that overlap can leave the swap installed for good, after
which every new module in the process is empty ("Cannot copy out of meta tensor"). The app loads in
request threads and in the job worker at once, so every place that builds modules at run time holds
this one lock.
"""

from __future__ import annotations

import functools
import threading

BUILD_LOCK = threading.RLock()  # re-entrant: serialised builders call each other (the scorer loads the embedded CLIP)


def serialised(fn):
    """Run `fn` holding BUILD_LOCK (a decorator for functions that build modules)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with BUILD_LOCK:
            return fn(*args, **kwargs)

    return wrapper
