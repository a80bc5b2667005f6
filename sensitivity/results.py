"""A spectrum's output folder: the table (CSV + parquet), the figures, and what produced them.

    <out>/spectrum.csv, spectrum.parquet   one row per concept (sensitivity.spectrum.COLUMNS)
    <out>/config.json                      resolved config, model, run, seeds, versions, summary
    <out>/figures/*.html                   histogram, top-N, similarity scatter (plotly)
    <out>/erasure/                         the quick erasure's run folder, when no run was named

`SpectrumFolder` is the one place these names are known.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path

import pandas as pd

from backends.storage import atomic_write, ensure_writable

from . import figures


class SpectrumFolder:
    """A spectrum's output folder: the one place its file names are known (docs/design.md §2)."""

    CSV, PARQUET, RECORD = "spectrum.csv", "spectrum.parquet", "config.json"

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def quick_erasure_path(self) -> Path:
        """Where the quick erasure goes when the request names no run (sensitivity.run)."""
        return self.path / "erasure"

    @property
    def csv(self) -> Path:
        """The table people download (text cells a spreadsheet would run are quoted: spreadsheet_safe)."""
        return self.path / self.CSV

    @property
    def finished(self) -> bool:
        """Whether the spectrum was saved (its table is written before its record)."""
        return self.csv.is_file()

    def record(self) -> dict:
        """config.json: the resolved config, model, run, seeds, versions and summary."""
        return json.loads((self.path / self.RECORD).read_text())

    def guided(self) -> dict | None:
        """A proxy-guided spectrum's calibration summary (None for a full one, or no record yet)."""
        try:
            return self.record()["summary"].get("guided")
        except (OSError, ValueError, KeyError):
            return None

    def load(self) -> pd.DataFrame:
        return load_spectrum(self.path)


def check_writable(out: str | Path) -> Path:
    """Create `out` (or fail at once, before any compute, with a message saying what to change)."""
    return ensure_writable(out, "choose a folder you can write to")


def summary(df: pd.DataFrame) -> dict:
    """The numbers a reader looks for first: where the target and the neutral concepts rank."""
    out: dict = {"concepts": len(df)}
    if df["delta"].notna().any():
        ranked = df.sort_values("delta", ascending=False)
        out["top5"] = ranked["concept"].head(5).tolist()
        for kind in ("target", "null", "neutral"):
            rows = df[df["kind"] == kind]
            if len(rows):
                out[f"{kind}_rank"] = int(rows["rank"].min())
                out[f"{kind}_percentile"] = round(100 * float(rows["rank"].min()) / len(df), 1)
    if "guided" in df.attrs:  # a proxy-guided spectrum: what was sampled, and what the calibration says
        out["guided"] = df.attrs["guided"]
    if "spearman_proxy_delta" in df.attrs:
        out["spearman_proxy_delta"] = round(df.attrs["spearman_proxy_delta"], 4)
    return out


def save_spectrum(df: pd.DataFrame, out: str | Path, config, model: str, run: str | None, extra: dict | None = None) -> Path:
    from backends.storage import versions

    out = check_writable(out)
    atomic_write(out / SpectrumFolder.CSV, lambda p: spreadsheet_safe(df).to_csv(p, index=False))
    atomic_write(out / SpectrumFolder.PARQUET, lambda p: df.to_parquet(p, index=False))
    record = {"model": model, "run": run, "config": dataclasses.asdict(config), "seeds": config.seeds(),
              "summary": summary(df), "versions": versions(), **(extra or {})}
    atomic_write(out / SpectrumFolder.RECORD, lambda p: Path(p).write_text(json.dumps(record, indent=2, default=str)))
    (out / "figures").mkdir(exist_ok=True)
    column = "proxy" if config.proxy_only else "delta"
    for name, fig in [("histogram", figures.histogram(df, column)), ("top", figures.top_affected(df, 20, column)),
                      ("similarity", figures.similarity_scatter(df, column))]:
        atomic_write(out / "figures" / f"{name}.html", functools.partial(_write_html, fig))
    return out


def _write_html(fig, path) -> None:
    fig.write_html(path, include_plotlyjs="cdn")


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet runs as a formula at the start of a cell


def spreadsheet_safe(df: pd.DataFrame) -> pd.DataFrame:
    """The table with every text cell that a spreadsheet would run as a formula ("=cmd|...") prefixed by
    an apostrophe, which shows it as text (the CSV is for people; the parquet keeps the exact strings)."""
    out = df.copy()
    for column in [c for c in out.columns if not pd.api.types.is_numeric_dtype(out[c])]:
        out[column] = out[column].map(lambda v: f"'{v}" if isinstance(v, str) and v.startswith(FORMULA_START) else v)
    return out


def load_spectrum(out: str | Path) -> pd.DataFrame:
    """The spectrum table as saved: from the parquet (exact strings), else from the CSV with the
    apostrophes spreadsheet_safe added taken off again."""
    out = Path(out)
    if (out / SpectrumFolder.PARQUET).exists():
        return pd.read_parquet(out / SpectrumFolder.PARQUET).assign(concept=lambda d: d["concept"].fillna(""))
    df = pd.read_csv(out / SpectrumFolder.CSV, keep_default_na=False, na_values=[""])
    for column in [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]:
        df[column] = df[column].map(lambda v: v[1:] if isinstance(v, str) and v[1:2] and v.startswith("'")
                                    and v[1:].startswith(FORMULA_START) else v)
    return df.assign(concept=lambda d: d["concept"].fillna(""))

