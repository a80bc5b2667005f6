"""EmojiWorld's concept list: which emoji, what a person calls them, and their group (docs/design.md §6).

    python -m emojiworld.catalogue            # rewrite emojiworld/concepts.json

Built once from two Debian packages and committed, so nothing at run time needs them:
- names and groups: Unicode's `emoji-test.txt` (package `unicode-data`): the CLDR short name of each
  emoji ("cat face", "slice of pizza", "red heart") is what people call it, better than the formal
  character name ("HEAVY BLACK HEART"); its group/subgroup gives the coarse category;
- glyphs: `fonts-noto-color-emoji`: a concept is kept only if the font draws it.
Single code points only (an emoji that needs U+FE0F to show in colour counts as one); no ZWJ
sequences, skin tones, flags, keycaps, letters in boxes, zodiac signs or clock faces (those are
variations of one picture at 32 px, not concepts a person names apart).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import unicodedata
from pathlib import Path

EMOJI_TEST = Path("/usr/share/unicode/emoji/emoji-test.txt")
CONCEPTS = Path(__file__).resolve().parent / "concepts.json"

# Unicode subgroup -> the world's coarse group (used by protocols, vocabularies and the UI).
GROUPS = {
    "face": ("face-", "cat-face", "monkey-face"),
    "hand": ("hand-", "hands"),
    "body": ("body-parts",),
    "person": ("person", "person-", "family"),
    "animal": ("animal-",),
    "plant": ("plant-",),
    "food": ("food-",),
    "drink": ("drink",),
    "place": ("place-map", "place-geographic"),
    "building": ("place-building", "place-religious", "place-other"),
    "vehicle": ("transport-ground", "transport-water", "transport-air"),
    "weather": ("sky & weather",),
    "activity": ("event", "award-medal", "sport", "game", "arts & crafts"),
    "clothing": ("clothing",),
    "music": ("sound", "music", "musical-instrument"),
    "object": ("dishware", "hotel", "time", "phone", "computer", "light & video", "book-paper", "money",
               "mail", "writing", "office", "lock", "tool", "science", "medical", "household", "other-object"),
    "symbol": ("heart", "emotion", "transport-sign", "warning", "religion", "gender", "math",
               "punctuation", "currency", "other-symbol", "geometric"),
}
SKIP_SUBGROUPS = {"skin-tone", "hair-style", "keycap", "alphanum", "zodiac", "flag", "country-flag",
                  "subdivision-flag", "arrow", "av-symbol"}


def group_of(subgroup: str) -> str | None:
    """The coarse group of a Unicode subgroup, or None when the world leaves it out."""
    if subgroup in SKIP_SUBGROUPS:
        return None
    for group, prefixes in GROUPS.items():
        if any(subgroup == p or (p.endswith("-") and subgroup.startswith(p)) for p in prefixes):
            return group
    raise ValueError(f"subgroup {subgroup!r} has no group: add it to GROUPS or SKIP_SUBGROUPS")


def plain_name(cldr: str) -> str:
    """'Woman’s hat' -> "woman's hat"; 'piñata' -> 'pinata' (ASCII, lower case, one space)."""
    text = cldr.replace("\u2019", "'").replace("\u201c", "").replace("\u201d", "")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return " ".join(text.lower().split())


def read_emoji_test(path: Path = EMOJI_TEST) -> list[dict]:
    """Fully-qualified single-code-point emoji (an optional U+FE0F allowed) with name and subgroup."""
    rows, subgroup = [], ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# subgroup:"):
            subgroup = line.split(":", 1)[1].strip()
            continue
        if not line or line.startswith("#") or "; fully-qualified" not in line:
            continue
        points = [p for p in line.split(";")[0].split() if p != "FE0F"]
        if len(points) != 1:
            continue
        name = line.split("#", 1)[1].strip().split(" ", 2)[2]  # "😀 E1.0 grinning face"
        rows.append({"cp": int(points[0], 16), "cldr": name, "subgroup": subgroup})
    return rows


def is_clock(name: str) -> bool:
    return name.endswith("o'clock") or name.endswith("-thirty")


def build(font_path: Path, emoji_test: Path = EMOJI_TEST) -> dict:
    from .glyphs import GlyphFont

    font = GlyphFont(font_path)
    concepts, seen = [], set()
    for row in read_emoji_test(emoji_test):
        group, name = group_of(row["subgroup"]), plain_name(row["cldr"])
        if group is None or is_clock(name) or name in seen or not font.has(chr(row["cp"])):
            continue
        seen.add(name)
        concepts.append({"name": name, "cp": f"U+{row['cp']:04X}", "group": group, "subgroup": row["subgroup"],
                         "unicode_name": unicodedata.name(chr(row["cp"]), "").lower()})
    return {
        "source": {"names_and_groups": f"{emoji_test} (Debian unicode-data)",
                   "emoji_test_sha256": hashlib.sha256(emoji_test.read_bytes()).hexdigest(),
                   "font": font.record()},
        "concepts": concepts,
    }


def main() -> None:
    from .glyphs import FONT_PATH

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--font", type=Path, default=FONT_PATH)
    p.add_argument("--emoji-test", type=Path, default=EMOJI_TEST)
    p.add_argument("--out", type=Path, default=CONCEPTS)
    a = p.parse_args()
    data = build(a.font, a.emoji_test)
    a.out.write_text(json.dumps(data, indent=1, ensure_ascii=True) + "\n")
    counts: dict[str, int] = {}
    for c in data["concepts"]:
        counts[c["group"]] = counts.get(c["group"], 0) + 1
    print(f"{len(data['concepts'])} concepts -> {a.out}: {counts}")


if __name__ == "__main__":
    main()
