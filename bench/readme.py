"""Put the benchmark table of the last full run into the README: ``.venv/bin/python bench/readme.py``.

Why: the README's benchmark figures must be the rows of bench/results.md, under a line that
names the run that measured them, never figures typed in by hand. This replaces what stands
between the README's bench-table markers with the block ``bench/run.py`` also writes at the end
of bench/results.md (both from bench/results.json, by bench/tables.py), and the one row of the
README's first table that quotes benchmark 2. ``--check`` changes nothing and exits 1 when the
README is not what the results say. A quick run (``--quick``) is refused: its sizes are not
the ones the README describes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BENCH, REPO, Result
from tables import BEGIN, END, readme_block, results_of

README = REPO / "README.md"
#: the line of the README's first table that quotes benchmark 2, and the rows it quotes
TOP_ROW = "| one changed file, 10,000-SecId drop ("


def cell(results: list[Result], benchmark: str, metric: str) -> str:
    found = [r for r in results if r.benchmark == benchmark and r.metric.startswith(metric)]
    if len(found) != 1:
        raise SystemExit(f"no single row {benchmark!r} / {metric!r}... in the results")
    return found[0].cell()


def top_row(data: dict) -> str:
    """The first table's row comparing the tutorial's cycle with the daemon, from benchmark 2."""
    results = results_of(data)
    tutorial = cell(results, "2 vs tutorial", "tutorial cycle")
    daemon = cell(results, "2 vs tutorial", "daemon, same change")
    run = f"`make bench` of {data['machine']['date'][:10]} at `{data['machine']['daemon_at_start']}`"
    return f"{TOP_ROW}[benchmark 2](#benchmarks), {run}) | {tutorial} | {daemon} |"


def refreshed(text: str, data: dict) -> str:
    """``text`` (the README) with the block between the markers and the first table's row replaced."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"README.md has no {BEGIN!r} ... {END!r} block")
    text = f"{text[: start + len(BEGIN)]}\n{readme_block(data)}\n{text[end:]}"
    lines = text.split("\n")
    tops = [i for i, line in enumerate(lines) if line.startswith(TOP_ROW)]
    if len(tops) != 1:
        raise SystemExit(f"README.md has {len(tops)} lines starting {TOP_ROW!r}, not one")
    lines[tops[0]] = top_row(data)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=BENCH / "results.json")
    parser.add_argument("--check", action="store_true", help="exit 1 if the README differs; change nothing")
    args = parser.parse_args(argv)
    data = json.loads(args.results.read_text())
    if data.get("plan", {}).get("quick"):
        raise SystemExit(f"{args.results} is from a --quick run: the README shows full runs only")
    text = README.read_text()
    new = refreshed(text, data)
    if args.check:
        if new != text:
            print("README.md's benchmark figures differ from", args.results, file=sys.stderr)
            return 1
        return 0
    README.write_text(new)
    print(
        f"README.md: benchmark table and first-table row from {args.results}"
        + (" (unchanged)" if new == text else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
