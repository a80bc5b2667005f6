"""A point of a long run's learning curve, measured from its committed kept state (no training process needed).

    python -m emojiworld.eval_kept --keep assets/emoji/training/unet_kept --classifier .train/emoji/c100/classifier \\
        --judge 100 --out emojiworld/learning_curve_main.jsonl

The kept state's EMA weights (bfloat16, read as float32) sample "a {concept}" for each of `chosen(prompts)`
(the demo 100 by default) x --seeds seeds, and a classifier trained on `chosen(judge)` (0: every concept)
names what it sees: concept top-1 and the share of concepts right on at least half their seeds, as
train_unet's --eval-every rows. A judge over fewer concepts than the model knows is a closed set (an image
of another concept is counted as one of the judge's): the row records the counts.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from shapesworld.classifier import WorldClassifier
from shapesworld.training import versions

from .subsets import chosen, model_set
from .train_classifier import classes_for


def load_kept(folder: Path):
    """(unet, text_encoder, tokenizer, vae, meta) of a kept state, float32, eval mode."""
    from diffusers import AutoencoderKL
    from transformers import CLIPTokenizer

    from shapesworld.architectures import new_text_encoder
    from shapesworld.tokenizer import TEXT_CONTEXT, write_clip_tokenizer

    from .train_unet import kept_weights, new_unet

    meta = json.loads((folder / "meta.json").read_text())
    settings = meta["settings"]
    unet, text_encoder = new_unet(tuple(settings["widths"])), new_text_encoder()
    for name, model in [("ema_unet", unet), ("ema_te", text_encoder)]:
        model.load_state_dict(kept_weights(folder, name))
    with tempfile.TemporaryDirectory() as tmp:  # the tokenizer reads its files when loaded
        tokenizer = CLIPTokenizer.from_pretrained(write_clip_tokenizer(Path(tmp) / "tokenizer", TEXT_CONTEXT))
    vae = AutoencoderKL.from_pretrained(settings["vae"])
    return unet.eval(), text_encoder.eval(), tokenizer, vae.eval(), meta


def main(argv: list[str] | None = None) -> dict:
    from .train_unet import concept_accuracy

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--keep", type=Path, default=Path("assets/emoji/training/unet_kept"))
    p.add_argument("--classifier", type=Path, required=True, help="a classifier folder trained on chosen(--judge)")
    p.add_argument("--judge", type=int, default=100, help="the classifier's concepts: chosen(N) (0: every concept)")
    p.add_argument("--prompts", type=int, default=100, help="the concepts drawn: chosen(N) (100: the demo concepts)")
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("emojiworld/learning_curve_main.jsonl"))
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    unet, text_encoder, tokenizer, vae, meta = load_kept(a.keep)
    classes, names = chosen(a.judge), chosen(a.prompts)
    classifier = WorldClassifier.load(a.classifier, classes_for(classes))
    t0 = time.time()
    acc = concept_accuracy(unet, text_encoder, tokenizer, vae, names, classifier, a.seeds, classes)
    s = meta["settings"]
    known = model_set(s["concepts"]) if s["with_demo"] else chosen(s["concepts"])
    row = {"step": meta["step"], "of_steps": s["steps"], "model_concepts": len(known), "judge_concepts": len(classes),
           "prompt_concepts": len(names),
           **acc, "eval_s": round(time.time() - t0, 1), "widths": s["widths"], "batch": s["batch"],
           "versions": versions()}
    with a.out.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(row)
    return row


if __name__ == "__main__":
    main()
