"""The frozen-model latent bank (docs/design.md §3.1, "The latent bank"): z_t sampled ahead, in large batches, and cached.

When z_t comes from the frozen model theta (zt_from="frozen": the `fast` presets, ESD-2024) it depends on
the conditioning, the start code and the sampler step only, never on theta'. So instead of running k
guided DDIM steps at batch 1 inside every training step, the bank runs, once, the whole trajectory of
theta for every conditioning a method will sample under (its targets, AP's search-space centres) from
`n` fixed start codes, many rows per denoiser call, and keeps every intermediate latent:

    z[key]  [n, K, C, h, w]   z[key][j, k] = k guided DDIM steps of theta from code j  (z[key][j, 0] = code j)

K = ddim_steps (a step index k is drawn from [0, K)). A training step then draws (code j, step k) and
reads the latent: the same tensor `sample_until` returns from code j (tests/test_latent_bank.py), up to
the rounding of a batched call. The trained-model path (zt_from="trained", `reference`) never uses it.

On disk, one file per conditioning, so another run, another target sharing AP centres, or a resumed run
loads instead of sampling (atomic safetensors writes, as every cache here):

    cache/latents/<theta fingerprint>/<sampler key>/<conditioning key>.safetensors
        z [n, K, C, h, w] in the sampler's dtype; metadata: the label (prompt or word)

The sampler key holds everything else that decides z: DDIM steps, guidance, the scheduler's config, the
image size, the codes' seed and count, the null conditioning, the dtype and autocast precision.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from backends import storage
from backends.family import Cond, cat
from backends.storage import atomic_write, weights_fingerprint

from .diffusion import guided_ddim

BANK_SEED = 104729  # offset of the codes' generator from the run seed: the bank never draws from ctx.gen
BANK_ROWS = 32  # conditionings x codes sampled per batched call (the guided call holds twice as many rows)


def _tensor_key(t: torch.Tensor) -> str:
    return hashlib.sha1(t.detach().float().cpu().contiguous().numpy().tobytes()).hexdigest()


def cond_key(cond: Cond) -> str:
    """20-hex hash of a one-row conditioning's values: the key of its trajectories (the prompt text alone
    would not do: AP's centres are float16-stored word embeddings, not fresh encodings)."""
    h = hashlib.sha1()
    for name in sorted(cond):
        h.update(name.encode() + _tensor_key(cond[name]).encode())
    return h.hexdigest()[:20]


class LatentBank:
    """Trajectories of the frozen denoiser from `n` start codes, per conditioning (see the module doc).

    ctx: the training Context (its frozen model, scheduler, c_n, size, seed and autocast precision)."""

    def __init__(self, ctx, n: int, root: str | Path | None = None):
        self.ctx, self.n = ctx, n
        gen = torch.Generator().manual_seed(ctx.config.seed + BANK_SEED)
        self.codes = ctx.family.noise(ctx.pipe, n, gen, ctx.size)  # [n, C, h, w]
        self.z: dict[str, torch.Tensor] = {}  # label -> [n or m, K, C, h, w] on the device
        self.lazy: dict[str, tuple[Cond, int]] = {}  # label -> (conditioning, m codes): sampled when first read
        self.built_s = 0.0  # seconds spent sampling (not loading) so far
        self.loaded = self.sampled = 0  # conditionings read from disk / sampled here
        self.store_error: str | None = None  # why the last write to disk failed (the run goes on from memory)
        cfg = ctx.config
        settings = {"ddim_steps": cfg.ddim_steps, "guidance": cfg.start_guidance, "size": ctx.size,
                    "scheduler": dict(ctx.scheduler.config), "codes": _tensor_key(self.codes), "n": n,
                    "null": cond_key(ctx.emb_null), "dtype": str(self.codes.dtype), "precision": cfg.precision}
        key = hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]
        model = weights_fingerprint({"frozen": ctx.frozen})
        self.folder = Path(root or storage.CACHE_ROOT / "latents") / model / key

    def add(self, conds: dict[str, Cond], m: int | None = None) -> None:
        """Make sure every labelled one-row conditioning has its trajectories from the first `m` codes (all n
        by default): loaded from disk if cached, else sampled (BANK_ROWS conditioning x code rows per call)
        and stored."""
        m = self.n if m is None else m
        missing = {}
        for label, cond in conds.items():
            if label in self.z:
                continue
            z = self._load(cond, m)
            if z is None:
                missing[label] = cond
            else:
                self.z[label] = z
                self.loaded += 1
        if missing:
            t0 = time.perf_counter()
            self._sample(missing, m)
            self.built_s += time.perf_counter() - t0

    def add_lazy(self, conds: dict[str, Cond], m: int) -> None:
        """Register labelled conditionings whose trajectories from the first `m` codes are loaded or sampled
        (in one batched call) only when one of them is first read: a search over 100 centres reads a few
        draws of each, and sampling 16 codes of every centre ahead would cost more than the run itself."""
        for label, cond in conds.items():
            if label not in self.z:
                self.lazy[label] = (cond, m)

    def materialise(self, labels: list[str]) -> None:
        """Load or sample every still-lazy label of `labels` now, in batched calls (BANK_ROWS rows each):
        a reader of many labels at once (the centre probe over 100 centres) pays a few wide calls instead of
        one narrow call per label."""
        pending: dict[int, dict[str, Cond]] = {}  # m -> {label: cond}
        for label in labels:
            if label in self.lazy:
                cond, m = self.lazy.pop(label)
                pending.setdefault(m, {})[label] = cond
        for m, conds in pending.items():
            self.add(conds, m)

    def get(self, label: str, codes: tuple[int, ...], k: int) -> torch.Tensor:
        """z_t [len(codes), C, h, w]: k frozen-model DDIM steps from each code under `label`'s conditioning
        (a label with m < n codes reads code j as j mod m)."""
        self.materialise([label])
        z = self.z[label]
        return z[[j % len(z) for j in codes], k]

    def __contains__(self, label: str) -> bool:
        return label in self.z or label in self.lazy

    def summary(self) -> dict:
        """What the run's start event reports: sizes, cache hits and the seconds spent sampling."""
        return {"conditionings": len(self.z), "codes": self.n, "loaded": self.loaded, "sampled": self.sampled,
                "sampled_s": round(self.built_s, 3), "bytes": sum(z.numel() * z.element_size() for z in self.z.values()),
                "folder": str(self.folder), **({"lazy": len(self.lazy)} if self.lazy else {})}

    # ------------------------------------------------------------------ sampling and storage
    @torch.no_grad()
    def _sample(self, conds: dict[str, Cond], n: int) -> None:
        """Every (conditioning, code < n) row of `conds`, BANK_ROWS rows per batched guided trajectory."""
        ctx = self.ctx
        pairs = [(label, j) for label in conds for j in range(n)]
        out: dict[str, list[torch.Tensor]] = {label: [] for label in conds}  # code j's trajectory at index j
        for i in range(0, len(pairs), BANK_ROWS):
            chunk = pairs[i : i + BANK_ROWS]
            cond = cat([conds[label] for label, _ in chunk])  # [b, L, d]
            z = self.codes[[j for _, j in chunk]]  # [b, C, h, w]
            with ctx.autocast():
                steps = self._trajectory(z, cond)  # [b, K, C, h, w]
            for (label, _), traj in zip(chunk, steps):  # pairs run over codes 0..n-1 in order per label
                out[label].append(traj)
        for label, trajs in out.items():
            self.z[label] = torch.stack(trajs)  # [n, K, C, h, w]
            self._store(label, conds[label], self.z[label])
            self.sampled += 1

    def _trajectory(self, z: torch.Tensor, cond: Cond) -> torch.Tensor:
        """Every latent of the guided DDIM run from z under cond: [b, K, C, h, w], index 0 = z itself.
        The steps of erasure.diffusion.sample_until, on many rows at once."""
        ctx, cfg = self.ctx, self.ctx.config
        steps = guided_ddim(ctx.family, ctx.frozen, ctx.scheduler, z, cond, ctx.emb_null, cfg.start_guidance, cfg.ddim_steps - 1)
        return torch.stack([z, *steps], 1)

    def _path(self, cond: Cond) -> Path:
        return self.folder / f"{cond_key(cond)}.safetensors"

    def _load(self, cond: Cond, m: int) -> torch.Tensor | None:
        """The stored trajectories of the first m codes (a file of more codes serves fewer: the codes are the
        same sequence), or None."""
        path = self._path(cond)
        if not path.exists():
            return None
        with safe_open(str(path), "pt") as f:
            z = f.get_tensor("z")
        if z.shape[0] < m or z.shape[1] != self.ctx.config.ddim_steps:  # too few codes, or a foreign file
            return None
        return z[:m].to(self.codes.device, self.codes.dtype)

    def _store(self, label: str, cond: Cond, z: torch.Tensor) -> None:
        """Best effort: an unwritable cache folder costs the reuse, never the run (the bank is in memory)."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            atomic_write(self._path(cond), lambda p: save_file({"z": z.detach().cpu().contiguous()}, str(p),
                                                               metadata={"label": label[:200]}))
        except OSError as e:
            self.store_error = f"latent bank not cached ({e}); set CSE_CACHE_DIR to a writable folder"
