"""Nested training state <-> safetensors + JSON, so checkpoints never need pickle.

Tensors of a nested dict/list structure go to one safetensors file under their path
("opt/state/3/exp_avg"); everything else (numbers, strings, numpy RNG state) goes to JSON.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

_TENSOR = "__tensor__"


def _split(obj, path: str, tensors: dict[str, torch.Tensor]):
    if isinstance(obj, torch.Tensor):
        tensors[path] = obj.detach().cpu().contiguous()
        return {_TENSOR: path}
    if isinstance(obj, dict):
        return {"__dict__": [[_key(k), _split(v, f"{path}/{k}", tensors)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return [_split(v, f"{path}/{i}", tensors) for i, v in enumerate(obj)]
    return obj


def _key(k):
    if isinstance(k, (str, int, float, bool)) or k is None:
        return k
    raise TypeError(f"unsupported state key {k!r}")


def _join(obj, tensors: dict[str, torch.Tensor]):
    if isinstance(obj, dict) and _TENSOR in obj:
        return tensors[obj[_TENSOR]]
    if isinstance(obj, dict) and "__dict__" in obj:
        return {k: _join(v, tensors) for k, v in obj["__dict__"]}
    if isinstance(obj, list):
        return [_join(v, tensors) for v in obj]
    return obj


def save_state(state: dict, folder: Path) -> None:
    """Write `state` to folder/{state.safetensors,state.json} atomically (via a temp folder)."""
    tensors: dict[str, torch.Tensor] = {}
    tree = _split(state, "", tensors)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(tensors, str(tmp / "state.safetensors"))
    (tmp / "state.json").write_text(json.dumps(tree))
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)


def load_state(folder: Path) -> dict:
    tensors = load_file(str(folder / "state.safetensors"))
    return _join(json.loads((folder / "state.json").read_text()), tensors)


def load_optimizer(opt: torch.optim.Optimizer, state: dict) -> None:
    """opt.load_state_dict for a state read back from a checkpoint: its per-parameter state keys are
    the parameter indices, which torch wants as ints."""
    opt.load_state_dict({**state, "state": {int(k): v for k, v in state["state"].items()}})
