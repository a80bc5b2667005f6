"""Scale-out (docs/design.md §2): the vocabulary sharded by chunk over Ray actors that each hold both models.

Shards are whole chunks of the in-process order, so every generation batch is the same one the
in-process run makes and the table comes out identical for identical seeds. `address="local"`
starts a local cluster of `workers` processes; any other address is passed to `ray.init`.
"""

from __future__ import annotations

import dataclasses
import socket
from typing import Any

from .rows import Progress, SpectrumConfig, chunk_rows, load_models


class _Worker:
    """One Ray actor: loads the base model, theta' and the scorer once, then serves chunks."""

    def __init__(self, model: str, run: str, config: dict, device: str, cache_root, threads: int):
        import torch

        torch.set_num_threads(threads)
        self.config = SpectrumConfig(**config)
        self.models = load_models(model, run, self.config, device, cache_root)

    def rows(self, concepts: list[str]) -> list[dict]:
        return chunk_rows(self.models, concepts, self.config)


CONNECT_TIMEOUT_S = 5.0


def check_address(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """A cluster address that answers within `timeout` ('local' and 'auto' are Ray's own); otherwise a
    clear error, where ray.init would retry its connection for minutes."""
    if address in ("local", "auto"):
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"Ray address must be host:port, ray://host:port, 'auto' or 'local', got {address!r}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise RuntimeError(f"cannot reach a Ray cluster at {address!r} within {timeout:g} s ({e.strerror or e}); "
                           "start one with `ray start --head` and pass its address, use 'local', or leave out "
                           "--address to compute in this process") from None


def sharded_rows(model: str, run: str, concepts: list[str], config: SpectrumConfig, address: str, workers: int,
                 device: str = "cpu", cache_root=None, progress: Progress | None = None, cancel=None) -> list[dict]:
    try:
        import ray
    except ImportError as e:
        raise RuntimeError("Ray is not installed; `pip install ray`, or leave out the cluster address "
                           "to compute the spectrum in this process") from e
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    check_address(address)
    started = not ray.is_initialized()
    if started:
        kwargs = {"num_cpus": workers} if address == "local" else {"address": address}
        ray.init(include_dashboard=False, log_to_driver=False, **kwargs)
    try:
        # Ray hides GPUs from actors that do not ask for one: share the GPUs among the workers
        gpus = 1.0 / workers if str(device).startswith("cuda") else 0
        actor: Any = ray.remote(num_cpus=1, num_gpus=gpus)(_Worker)  # Ray's actor handles are built at runtime
        pool = [actor.remote(model, run, dataclasses.asdict(config), device, cache_root, 1) for _ in range(workers)]
        chunks = [concepts[i : i + config.chunk] for i in range(0, len(concepts), config.chunk)]
        pending = {pool[i % workers].rows.remote(chunk): i for i, chunk in enumerate(chunks)}
        results: dict[int, list[dict]] = {}
        done = 0
        while pending:
            if cancel is not None and cancel.cancelled:
                from erasure import Cancelled

                raise Cancelled(f"spectrum cancelled after {done} of {len(concepts)} concepts")
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            if not ready:
                continue
            i = pending.pop(ready[0])
            results[i] = ray.get(ready[0])
            done += len(results[i])
            if progress:
                progress(done, len(concepts), results[i][-1]["concept"])
        return [row for i in range(len(chunks)) for row in results[i]]
    finally:
        if started:
            ray.shutdown()
