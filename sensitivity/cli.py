"""Command line: `python -m sensitivity spectrum ...` (the app calls the same functions).

    python -m sensitivity spectrum --model embedded --target star --run runs/star --vocab world --k 8 \\
        --out results/star-spectrum
    python -m sensitivity spectrum --target star --run runs/star --vocab clip-words --size 5000 --proxy-only \\
        --out results/star-proxy

Without --run, a quick default erasure (`fast` preset: ESD, or MCE on FLUX) is made first into <out>/erasure.
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sensitivity", description="Sensitivity spectra of concept erasure.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("spectrum", help="compute the spectrum of an erasure run over a vocabulary")
    s.add_argument("--model", default="embedded", help="preset, local diffusers folder or hub repo id")
    s.add_argument("--target", action="append", required=True, help="the erased concept (repeat for several)")
    s.add_argument("--run", help="erasure run folder of the sanitized model (default: a quick ESD erasure; MCE on FLUX)")
    s.add_argument("--vocab", default="world",
                   help="english | imagenet | imagenette | world | clip-words | clip-all | nearest-K | a .txt/.csv file")
    s.add_argument("--size", type=int, help="first N concepts of the vocabulary (english, clip-words: most frequent first)")
    s.add_argument("--k", type=int, default=8, help="samples per concept")
    s.add_argument("--seed", type=int, default=0, help="first seed (seeds are seed..seed+k-1)")
    s.add_argument("--steps", type=int, default=25)
    s.add_argument("--guidance", type=float, default=5.0)
    s.add_argument("--template", help="prompt template, e.g. '{concept}' (default: the model's)")
    s.add_argument("--scorer", help="'embedded' or an open_clip 'arch/pretrained' tag")
    s.add_argument("--proxy-only", action="store_true", help="only the proxy D(c): no sampling, no CLIP")
    s.add_argument("--delta-top", type=int, default=0, help="proxy-guided: sample delta only for the N concepts "
                   "of largest D(c) (plus targets and neutral ones); D(c) for all; 0 = delta for every concept")
    s.add_argument("--delta-random", type=int, default=0, help="proxy-guided: delta also for N other concepts "
                   "drawn at random (seeded), to estimate what the proxy missed")
    s.add_argument("--delta-text", type=int, default=0, help="proxy-guided: delta also for the N other concepts of "
                   "largest text similarity to the target (its own phrases, which D(c) can under-rank)")
    s.add_argument("--delta-near", type=int, default=0, help="proxy-guided: then delta for the N unsampled concepts "
                   "whose text lies nearest to the most damaged found (their look-alikes)")
    s.add_argument("--text-space", default="model", choices=("model", "scorer"),
                   help="text_sim in the model's own text encoder (default; no extra weights) or the scorer's CLIP")
    s.add_argument("--proxy-dtype", default="float32", help="float32, or bfloat16 for a faster proxy")
    s.add_argument("--precision", default="auto",
                   help="autocast of the sampling: auto (bfloat16 on a GPU with it, float32 on the CPU), float32, "
                        "bfloat16")
    s.add_argument("--dedupe", action="store_true", help="drop repeated concepts of a user list")
    s.add_argument("--address", help="Ray cluster address, or 'local' for a local cluster (default: in-process)")
    s.add_argument("--workers", type=int, default=2, help="Ray workers (with --address)")
    s.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    s.add_argument("--batch", type=int, default=64, help="images per generation call (lower it on a small GPU)")
    s.add_argument("--dtype", default="float32", help="weights' dtype: float32, bfloat16 or float16 (FLUX: bfloat16)")
    s.add_argument("--resolution", type=int, default=0, help="image side in px (default 0: the model's native size)")
    s.add_argument("--force", action="store_true", help="score targets the model may not know (the embedded "
                   "model only knows its world's words)")
    s.add_argument("--out", required=True, help="output folder (CSV, parquet, figures, config.json)")
    return p


def _progress():
    from tqdm import tqdm

    from .request import is_quick_step

    bar = None

    def callback(done: int, total: int, concept: str) -> None:
        nonlocal bar
        erasing = is_quick_step(concept)  # the quick erasure's steps come first, then the concepts
        if bar is None or bar.total != total:
            if bar is not None:
                bar.close()
            bar = tqdm(total=total, unit="step" if erasing else "concept", dynamic_ncols=True,
                       desc=concept.split(":")[0] if erasing else "spectrum")
        bar.update(done - bar.n)
        if not erasing:
            bar.set_postfix(last=concept or '""')
        if done == total:
            bar.close()
            bar = None

    return callback


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from backends.storage import error_text

    from .request import SpectrumRequest, run
    from .results import summary

    config = {"vocab": args.vocab, "size": args.size, "k": args.k, "seed": args.seed, "steps": args.steps,
              "guidance": args.guidance, "template": args.template, "scorer": args.scorer,
              "proxy_only": args.proxy_only, "proxy_dtype": args.proxy_dtype, "dedupe": args.dedupe,
              "text_space": args.text_space, "dtype": args.dtype, "precision": args.precision, "batch": args.batch,
              "resolution": args.resolution,
              "delta_top": args.delta_top, "delta_random": args.delta_random,
              "delta_near": args.delta_near, "delta_text": args.delta_text}
    request = SpectrumRequest(args.model, tuple(args.target), config, args.run, device=args.device,
                              address=args.address, workers=args.workers, force=args.force)
    try:  # every check (device, cluster, settings, vocabulary, folder) runs before any model loads or trains
        df = run(request, args.out, progress=_progress(),
                 on_erasure=lambda: print("no --run given: erasing with ESD (fast preset) first", file=sys.stderr))
    except (ValueError, OSError, RuntimeError) as e:  # RuntimeError: a model or cluster that is not there
        print(f"error: {error_text(e)}", file=sys.stderr)
        return 2
    print(summary(df))
    print(f"written: {args.out}")
    return 0
