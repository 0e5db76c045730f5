"""Regenerate the model table in README.md from weights_manifest.json.

    python scripts/update_model_table.py          # rewrite README.md
    python scripts/update_model_table.py --check  # exit 1 if README.md is stale

tests/test_manifest.py runs the check, so the table never drifts from the manifest.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from manet_zoo.weights import Weights, read_manifest

README = Path(__file__).resolve().parents[1] / "README.md"
BEGIN, END = "<!-- model-table:begin -->", "<!-- model-table:end -->"


def render_table(records: dict[str, Weights]) -> str:
    rows = [
        "| factory | classes | trained on | init | paper top-1 (as reported) | weights |",
        "|---|---|---|---|---|---|",
    ]
    for name in sorted(records, key=lambda n: (n != "manet_msceleb", n)):
        w = records[name]
        paper = f"{w.paper.top1:.2f}% on {w.paper.test_set}" if w.paper else "-"
        status = (
            f"[{w.file.repo_id}](https://huggingface.co/{w.file.repo_id})"
            if w.published
            else "not published yet"
        )
        rows.append(
            f"| `{name}` | {w.num_classes:,} | {w.dataset} | {w.init or 'scratch'} "
            f"| {paper} | {status} |"
        )
    return "\n".join(rows)


def updated_readme(text: str, table: str) -> str:
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table}\n{END}{tail}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if README.md is stale")
    args = parser.parse_args()
    text = README.read_text(encoding="utf-8")
    new = updated_readme(text, render_table(read_manifest()))
    if args.check:
        if new != text:
            print("README.md's model table is stale: run python scripts/update_model_table.py")
            return 1
        return 0
    README.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
