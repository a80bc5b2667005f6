"""Writes english.txt: the 20,000 most frequent English words of the `wordfreq` package (3.1.1, its
'large' list) that are lower-case letters only and at least 3 long, most frequent first.

    pip install wordfreq==3.1.1 && python assets/vocab/make_english.py

wordfreq's data is CC BY-SA 4.0 (Robyn Speer and contributors); english.txt is derived from it and
shared alike. The project reads the file; it never imports wordfreq (backends/vocab.py)."""

import re
from pathlib import Path

import wordfreq

N = 20_000
words = [w for w in wordfreq.top_n_list("en", 200_000, wordlist="large") if re.fullmatch(r"[a-z]{3,}", w)][:N]
assert len(words) == N, len(words)
(Path(__file__).with_name("english.txt")).write_text("\n".join(words) + "\n")
