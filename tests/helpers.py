"""Paths and small builders shared by the tests."""

from __future__ import annotations

from pathlib import Path

REFERENCE_DIR = Path(__file__).parent / "reference"


def official_keys() -> list[tuple[str, tuple[int, ...]]]:
    """Keys and shapes of the official 7-class state_dict, in file order."""
    rows = []
    for line in (REFERENCE_DIR / "official_state_dict.tsv").read_text().splitlines():
        if line and not line.startswith("#"):
            key, shape = line.split("\t")
            rows.append((key, tuple(int(s) for s in shape.split(",")) if shape else ()))
    return rows
