"""Run folders: every erasure is a folder on disk, so jobs survive restarts (docs/design.md §3).

    <run>/config.json          resolved config, method, model, seeds, versions
    <run>/status.json          state (running | done | cancelled | failed), steps done
    <run>/events.jsonl         one JSON event per line (losses, adversarial concepts, snapshots)
    <run>/checkpoints/step_N/  trained tensors + optimiser + RNG state (safetensors + JSON)
    <run>/trajectory/*.png     snapshot images over training
    <run>/result.safetensors   the changed tensors only, named as in the pipeline ("unet.<param>")
    <run>/search.json          a concept search's diagnostics (AP, AGE; erasure.diagnostics), when it finishes

Every file is written atomically (temp file + rename), so a killed job never leaves a
half-written file behind.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from backends.families import family_of
from backends.storage import atomic_write, ensure_writable, versions, write_json, write_text

from .events import Event
from .masks import bake, parse_key
from .state import load_state, save_state

KEEP_CHECKPOINTS = 2  # checkpoints a run keeps on disk by default (erase(checkpoints_total_limit=...))




class RunFolder:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    # ------------------------------------------------------------------ creation
    @classmethod
    def create(cls, path: str | Path, record: dict) -> RunFolder:
        """A new run folder; refuses to overwrite an existing run and checks it is writable."""
        run = cls(path)
        if run.path.exists() and any(run.path.iterdir()):
            raise FileExistsError(f"{run.path} already exists and is not empty; choose a new --out or resume it")
        ensure_writable(run.path, "choose a writable --out folder")
        write_json(run.path / "config.json", {**record, "versions": versions(), "created": time.strftime("%Y-%m-%dT%H:%M:%S")})
        run.set_status("running", 0)
        return run

    @staticmethod
    def holds_run(path: str | Path) -> bool:
        """Whether `path` holds a run (its config.json was written when it started): one to resume."""
        return (Path(path) / "config.json").is_file()

    @staticmethod
    def finished(path: str | Path) -> bool:
        """Whether `path` holds a finished run's result (what a spectrum or Compare loads)."""
        return (Path(path) / "result.safetensors").is_file()

    @property
    def result_path(self) -> Path:
        """The changed tensors (a download)."""
        return self.path / "result.safetensors"

    @property
    def record_path(self) -> Path:
        """config.json (a download beside the result)."""
        return self.path / "config.json"

    @property
    def started(self) -> bool:
        return RunFolder.holds_run(self.path)

    def record_or_empty(self) -> dict:
        """config.json, or {} before the run has started."""
        return self.record if self.started else {}

    def search(self) -> dict | None:
        """A concept search's diagnostics (AP, AGE: erasure.diagnostics) once the run finished; else None."""
        path = self.path / "search.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def save_search(self, diagnostics: dict) -> None:
        write_json(self.path / "search.json", diagnostics)

    def damage(self) -> list[dict] | None:
        """The run judged over every concept of its world (evaluation.damage rows), once measured; else None."""
        path = self.path / "damage.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def save_damage(self, rows: list[dict]) -> None:
        write_json(self.path / "damage.json", rows)

    def grid(self, key: dict) -> tuple[Path, str] | None:
        """The cached before/after sheet drawn with `key` (prompts, seeds, sampler, ...): (PNG path, its
        markdown), or None when it was not drawn with exactly that key."""
        meta = self.path / "grid.json"
        if not meta.is_file() or not (self.path / "grid.png").is_file():
            return None
        cached = json.loads(meta.read_text())
        return (self.path / "grid.png", cached["text"]) if cached["key"] == key else None

    def save_grid(self, key: dict, image, text: str) -> None:
        """Keep one before/after sheet (uint8 [H, W, 3]) with the key it was drawn with: the Results view
        draws a run's default grid once."""
        from PIL import Image

        tmp = self.path / "grid.png.tmp"
        Image.fromarray(image).save(tmp, format="PNG")
        tmp.replace(self.path / "grid.png")
        write_json(self.path / "grid.json", {"key": key, "text": text})

    def trajectory_image(self, step: int, name: str) -> tuple[Path, str]:
        """Where a snapshot image goes: (absolute path, the path relative to the run that events record)."""
        (self.path / "trajectory").mkdir(exist_ok=True)
        rel = f"trajectory/step_{step:07d}_{name}.png"
        return self.path / rel, rel

    @classmethod
    def open(cls, path: str | Path) -> RunFolder:
        run = cls(path)
        if not (run.path / "config.json").is_file():
            raise FileNotFoundError(f"{run.path} is not an erasure run folder (no config.json)")
        return run

    # ------------------------------------------------------------------ records
    RECORD_KEYS = ("model", "method", "config")  # what a run's config.json must hold to be resumed or loaded

    @property
    def record(self) -> dict:
        """config.json; a ValueError naming what is missing when it is not a run's record (edited, truncated)."""
        try:
            record = json.loads((self.path / "config.json").read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{self.path / 'config.json'} is not valid JSON ({e.msg}); restore it or start a new run") from None
        missing = [k for k in self.RECORD_KEYS if not isinstance(record, dict) or k not in record]
        if missing:
            raise ValueError(f"{self.path / 'config.json'} lacks {', '.join(missing)}: not an erasure run's record; "
                             "restore it or start a new run")
        return record

    def base_pipeline(self, device: str = "cpu", offload: str = "none"):
        """The run's base model as it was trained: its recorded dtype (float32 for runs recorded
        before the dtype was); whole on `device` unless `offload` says otherwise (backends.offload)."""
        from backends import load_pipeline, torch_dtype

        record = self.record
        return load_pipeline(record["model"], device=device, dtype=torch_dtype(record.get("dtype", "float32")),
                             offload=offload)

    def status(self) -> dict:
        path = self.path / "status.json"
        return json.loads(path.read_text()) if path.exists() else {"state": "unknown", "step": 0}

    def set_status(self, state: str, step: int, message: str = "") -> None:
        write_json(self.path / "status.json", {"state": state, "step": step, "message": message,
                                                "pid": os.getpid(), "updated": time.time()})

    def append_event(self, event: Event) -> None:
        with (self.path / "events.jsonl").open("a") as f:
            f.write(json.dumps(event.to_dict()) + "\n")

    def events(self) -> list[dict]:
        path = self.path / "events.jsonl"
        if not path.exists():
            return []
        rows = []
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a kill mid-write is skipped, not fatal
                continue
        return rows

    def truncate_events(self, step: int) -> None:
        """On resume, drop events after the checkpoint so the log matches the replayed run."""
        kept = [e for e in self.events() if e["step"] <= step and e["kind"] != "cancelled"]
        write_text(self.path / "events.jsonl", "".join(json.dumps(e) + "\n" for e in kept))

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, step: int, state: dict, keep: int = KEEP_CHECKPOINTS) -> Path:
        """Write step `step`'s checkpoint, then delete all but the newest `keep`."""
        folder = self.path / "checkpoints" / f"step_{step:07d}"
        save_state(state, folder)
        for old in self.checkpoints()[:-keep]:
            for f in old.iterdir():
                f.unlink()
            old.rmdir()
        return folder

    def checkpoints(self) -> list[Path]:
        root = self.path / "checkpoints"
        if not root.exists():
            return []
        return sorted(p for p in root.iterdir() if re.fullmatch(r"step_\d{7}", p.name))

    def latest_checkpoint(self) -> tuple[int, dict] | None:
        ckpts = self.checkpoints()
        if not ckpts:
            return None
        return int(ckpts[-1].name.split("_")[1]), load_state(ckpts[-1])

    # ------------------------------------------------------------------ result
    def save_result(self, tensors: dict[str, torch.Tensor]) -> Path:
        path = self.path / "result.safetensors"
        flat = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        atomic_write(path, lambda p: save_file(flat, str(p)))
        return path

    def result(self) -> dict[str, torch.Tensor]:
        path = self.path / "result.safetensors"
        if not path.exists():
            raise FileNotFoundError(f"{self.path} has no result yet (state: {self.status()['state']}); resume or wait for it")
        return load_file(str(path))


def apply(pipe, run: str | Path | RunFolder):
    """Put an erased result onto a base pipeline in place (and return it), by the result's kind."""
    run = run if isinstance(run, RunFolder) else RunFolder.open(run)
    tensors = run.result()
    family = family_of(pipe)
    modules = {family.component: family.denoiser(pipe)}
    kind = run.record.get("result_kind") or ("masks" if any(k.startswith("mask.") for k in tensors) else "weights")
    if kind not in RESULT_KINDS:
        raise ValueError(f"run {run.path} holds a result of kind {kind!r}, which this version cannot apply "
                         f"(known: {', '.join(RESULT_KINDS)}); update the project")
    RESULT_KINDS[kind](modules, tensors)
    return pipe


def _apply_masks(modules: dict[str, torch.nn.Module], tensors: dict[str, torch.Tensor]) -> None:
    """MCE: binary neuron masks "mask.<where>.<component>.<path>", baked into the weights."""
    for key, value in tensors.items():
        where, component, path = parse_key(key)
        if component not in modules:
            raise ValueError(f"mask {key!r} targets unknown component {component!r}")
        bake(modules[component], where, path, value)


def _apply_weights(modules: dict[str, torch.nn.Module], tensors: dict[str, torch.Tensor]) -> None:
    """Changed tensors "<component>.<parameter>", copied into the pipeline's parameters."""
    for key, value in tensors.items():
        component, _, name = key.partition(".")
        if component not in modules:
            raise ValueError(f"result tensor {key!r} targets unknown component {component!r}")
        param = modules[component].get_parameter(name) if name else None
        if param is None or param.shape != value.shape:
            raise ValueError(f"result tensor {key!r} does not fit this pipeline; was the run made on another model?")
        with torch.no_grad():
            param.copy_(value.to(param.device, param.dtype))


# How each kind of result is put onto a pipeline (erasure.method's table); a new kind is one entry here.
RESULT_KINDS = {"weights": _apply_weights, "masks": _apply_masks}


def erased_copy(pipe, run: str | Path | RunFolder):
    """A new pipeline sharing every component of `pipe` but the denoiser: a copy carrying the run's result,
    placed as `pipe` is (offloaded to the same device if `pipe` is; backends.offload)."""
    from backends.offload import copy_module, offload_like

    name = family_of(pipe).component
    erased = type(pipe)(**{**pipe.components, name: copy_module(getattr(pipe, name))})
    # a pipeline's own size setting is not a component (FLUX: default_sample_size, 128 unless its builder
    # set another); without it the copy would draw at another size than the base from the same seeds
    if hasattr(pipe, "default_sample_size"):
        erased.default_sample_size = pipe.default_sample_size
    erased.set_progress_bar_config(disable=True)
    return offload_like(apply(erased, run), pipe)


def export(run: str | Path | RunFolder, out: str | Path, device: str = "cpu"):
    """Write a full diffusers folder of the base model with the erased tensors applied."""
    run = run if isinstance(run, RunFolder) else RunFolder.open(run)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty; choose a new folder")
    pipe = apply(run.base_pipeline(device), run)
    tmp = out.with_name(out.name + ".tmp")
    pipe.save_pretrained(tmp, safe_serialization=True)
    write_json(tmp / "erasure.json", run.record)
    os.replace(tmp, out)
    return out


def export_zip(run: str | Path | RunFolder, archive: str | Path, device: str = "cpu") -> Path:
    """A zip of the full diffusers folder (the app's download); made once, then reused. The folder is
    built beside the archive and removed; the archive appears only when complete."""
    archive = Path(archive)
    if archive.exists():
        return archive
    folder = archive.with_name(archive.stem + ".folder")
    shutil.rmtree(folder, ignore_errors=True)  # a half-built one from an interrupted export
    export(run, folder, device)
    tmp = shutil.make_archive(str(archive.with_name(archive.stem + ".tmp")), "zip", folder)
    os.replace(tmp, archive)
    shutil.rmtree(folder, ignore_errors=True)
    return archive
