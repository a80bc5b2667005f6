"""Command line: `python -m erasure erase|resume|export|list-methods` (the app calls the same functions).

    python -m erasure erase --model embedded --method ap --target star --preset object,fast --out runs/star
"""

from __future__ import annotations

import argparse
import json
import sys

from .events import Cancelled, Event
from .registry import get_method, list_methods


def _progress():
    from tqdm import tqdm

    bar = None

    def callback(event: Event) -> None:
        nonlocal bar
        if event.kind == "start":
            print(event.message, file=sys.stderr)  # the method, targets and the run's memory estimate
            bar = tqdm(total=event.total, initial=event.step, unit="step", dynamic_ncols=True)
        elif event.kind == "step" and bar is not None:
            bar.update(event.step - bar.n)
            post = {k: f"{v:.3g}" for k, v in event.losses.items()}
            if event.concept is not None:
                post["c_a"] = event.concept
            bar.set_postfix(post)
        elif event.kind in ("done", "cancelled") and bar is not None:
            bar.close()

    return callback


def _settings(pairs: list[str]) -> dict:
    """--set key=value pairs; values parsed as JSON when they can be (numbers, booleans)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m erasure", description="Erase concepts from text-to-image models.")
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("erase", help="start an erasure run")
    e.add_argument("--model", default="embedded", help="preset, local diffusers folder or hub repo id")
    e.add_argument("--method", default="ap", help=f"one of: {', '.join(list_methods())}")
    e.add_argument("--target", action="append", required=True, help="concept to erase (repeat for several)")
    e.add_argument("--preset", default="", help="comma-separated presets, e.g. object,fast")
    e.add_argument("--out", required=True, help="new run folder")
    e.add_argument("--steps", type=int)
    e.add_argument("--lr", type=float)
    e.add_argument("--param-group", dest="param_group")
    e.add_argument("--seed", type=int)
    e.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any other config field")
    e.add_argument("--device", default="cpu")
    e.add_argument("--dtype", default="float32", help="weights' dtype: float32, bfloat16 or float16 (FLUX: bfloat16)")
    e.add_argument("--checkpoints-total-limit", type=int, default=2, dest="checkpoints_total_limit",
                   help="checkpoints kept on disk (the oldest are deleted; default 2)")
    e.add_argument("--force", action="store_true", help="erase a concept the model may not know (the embedded "
                   "model only knows its world's words; anything else measures nothing)")
    r = sub.add_parser("resume", help="continue a stopped run from its last checkpoint")
    r.add_argument("run")
    r.add_argument("--device", default="cpu")
    x = sub.add_parser("export", help="write a full diffusers folder with the erasure applied")
    x.add_argument("run")
    x.add_argument("--out", required=True)
    sub.add_parser("list-methods", help="list the registered methods")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from backends import ModelUnavailableError, check_device
    from backends.storage import error_text

    from . import trainer
    from .request import EraseRequest, run
    from .runs import export

    try:
        if args.command in ("erase", "resume"):
            check_device(args.device)  # before anything loads
        if args.command == "list-methods":
            for name in list_methods():
                spec = get_method(name).SPEC
                print(f"{name:5} {spec.summary} [trains {spec.trains}; models: {', '.join(spec.families)}]")
        elif args.command == "erase":
            overrides = {k: v for k in ("steps", "lr", "param_group", "seed") if (v := getattr(args, k)) is not None}
            request = EraseRequest(args.model, args.method, tuple(args.target), args.preset,
                                   overrides | _settings(args.set), args.device, args.dtype, args.force,
                                   args.checkpoints_total_limit)
            print(f"done: {run(request, args.out, callback=_progress()).path}")
        elif args.command == "resume":
            print(f"done: {trainer.resume(args.run, callback=_progress(), device=args.device).path}")
        elif args.command == "export":
            print(f"exported: {export(args.run, args.out)}")
    except Cancelled as e:
        print(f"cancelled: {e}", file=sys.stderr)
        return 130
    except (ValueError, OSError, ModelUnavailableError) as e:  # OSError: a folder the file system refuses
        print(f"error: {error_text(e)}", file=sys.stderr)
        return 2
    return 0
