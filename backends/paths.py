"""Where the shipped models live (one module that every backend file may import without a cycle)."""

from pathlib import Path

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "embedded"  # the embedded pipeline, CLIP, classifier
EMBEDDED = "embedded"  # the model id of the shipped pipeline (ASSETS / "pipeline")
SHARED_ASSETS = ASSETS.parent  # files for every model: prompt sets (prompts/), vocabularies (vocab/)
EMOJI = "emoji"  # the model id of EmojiWorld's pipeline (EMOJI_ASSETS / "pipeline"), the second embedded world
EMOJI_ASSETS = SHARED_ASSETS / "emoji"
