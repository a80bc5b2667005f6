"""A diffusers pipeline folder from a kept state (EmojiWorld's UNet and text encoder at some step, with its
VAE, the CLIP BPE tokenizer and the training scheduler), loadable by StableDiffusionPipeline.from_pretrained:

    python -m emojiworld.export --keep assets/emoji/training/unet_kept --out .train/emoji/pipeline_6000

The UNet and text encoder are the kept EMA weights (bfloat16 on disk), written in float16 like the shipped
ShapesWorld pipeline's; the VAE is copied as trained (float32). `emojiworld.json` beside them records the
step and the training settings they come from, and `concepts.txt` the concept names the model learnt (what
the unknown-word guard accepts: backends.vocab).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from shapesworld.architectures import new_scheduler
from shapesworld.train_unet import save_pipeline

from .eval_kept import load_kept
from .subsets import chosen, model_set


def export(keep: Path, out: Path) -> Path:
    unet, text_encoder, tokenizer, vae, meta = load_kept(keep)
    # the VAE as trained (float32): the preset folder's vae is also the training run's input
    save_pipeline(out, unet.half(), text_encoder.half(), tokenizer, vae, new_scheduler(zero_snr=True))
    vae_config = out / "vae" / "config.json"  # loaded from the preset's own folder: no path to record there
    vae_config.write_text(json.dumps({k: v for k, v in json.loads(vae_config.read_text()).items()
                                      if k != "_name_or_path"}, indent=2, sort_keys=True) + "\n")
    s = meta["settings"]
    (out / "emojiworld.json").write_text(json.dumps({"step": meta["step"], "of_steps": s["steps"], "settings": s},
                                                    indent=1))
    learnt = model_set(s["concepts"]) if s["with_demo"] else chosen(s["concepts"])
    (out / "concepts.txt").write_text("\n".join(learnt) + "\n")
    return out


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--keep", type=Path, default=Path("assets/emoji/training/unet_kept"))
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    out = export(a.keep, a.out)
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
