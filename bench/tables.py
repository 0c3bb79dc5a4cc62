"""The results' tables: bench/results.md's and the README's, rendered by the same code from results.json.

Why one module: every figure in the README's benchmark table must be a verbatim copy of a
row of bench/results.md, under a line naming the run that measured it (date, daemon commit,
machine). ``bench/run.py`` writes the README's block into results.md; ``bench/readme.py``
puts the same block between the README's markers.
"""

from __future__ import annotations

import re
from typing import Any

from common import HARNESS, Result

BEGIN = (
    "<!-- bench-table: generated from bench/results.json by `.venv/bin/python bench/readme.py`;"
    " edit bench/, not this table -->"
)
END = "<!-- /bench-table -->"
COLUMNS = ("benchmark", "metric", "median", "target", "met?")
#: what each harness version changed (``HARNESS`` in common.py), told under a table from an older run
CHANGES = {
    2: "the backfill's goals are held against a floor on every core (before: one thread, the only floor"
    " of that run), floors and backfills report CPU seconds, 3t (whole-market daily files), 3p (parse-ahead"
    " depth) and 11 (report) are new, and 10's import floor no longer imports the package itself",
}


def order(benchmark: str) -> tuple[int, str]:
    """Sort key of a benchmark's name: its number, then its letter (``3``, ``3p``, ``3t``, ``10``)."""
    found = re.match(r"(\d+)(\S*)", benchmark)
    return (int(found.group(1)), found.group(2)) if found else (1 << 30, benchmark)


def met_cell(r: Result) -> str:
    if r.median is None:
        return "not run"
    return "—" if r.met is None else ("yes" if r.met else "**NO**")


def row(r: Result, notes: bool = True) -> str:
    """One table row; results.md's has the notes, the README's the same cells without them."""
    cells = [r.benchmark, r.metric, r.cell(), r.target or "", met_cell(r)]
    if notes:
        cells.append(r.notes)
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def header(notes: bool = True) -> list[str]:
    names = [*COLUMNS, "notes"] if notes else list(COLUMNS)
    return ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]


def in_readme(r: Result) -> bool:
    """The README shows every row with a goal and the rows a benchmark marked for it."""
    return r.met is not None or r.readme


def loads(info: dict[str, Any]) -> str:
    return ", ".join(f"{name} {load[0]}" for name, load in info.get("load_avg_by_benchmark", {}).items())


def run_line(data: dict[str, Any]) -> str:
    """Which run the figures come from: date, daemon commit, plan, machine, load."""
    info, plan = data["machine"], data.get("plan", {})
    what = "`.venv/bin/python bench/run.py --quick`" if plan.get("quick") else "`make bench`"
    text = (
        f"Figures from the {what} run of {info['date']} ({data['total_seconds'] / 60:.1f} min),"
        f" daemon code at `{info['daemon_at_start']}` (at its end: `{info.get('daemon_at_end')}`):"
        f" {info['cpu']}, {info['cores']} cores, {info['ram_gb']} GB RAM, Python {info['python']},"
        f" pyarrow {info['pyarrow']}, SQLite {info['sqlite']}; a shared machine, 1-minute load average as each"
        f" benchmark began: {loads(info)}."
    )
    earlier = info.get("earlier_run")
    if earlier:
        text += (
            f" Rows of the benchmarks that run did not re-run come from the run of {earlier['date']}, daemon"
            f" `{earlier.get('daemon_at_start')}` (at its end: `{earlier.get('daemon_at_end')}`)."
        )
    harness = data.get("harness", 1)
    if harness < HARNESS:
        changes = "; ".join(CHANGES.get(v, "") for v in range(harness + 1, HARNESS + 1))
        text += (
            f" That run predates the benchmarks' current definitions (harness {harness}, now {HARNESS}):"
            f" since then {changes}. Its rows measure what that harness measured."
        )
    return text + " Every row with its notes and profiles: [bench/results.md](bench/results.md)."


def results_of(data: dict[str, Any]) -> list[Result]:
    return sorted((Result(**r) for r in data["results"]), key=lambda r: order(r.benchmark))


def readme_block(data: dict[str, Any]) -> str:
    """The README's benchmark table with the line naming its run (what goes between the markers)."""
    rows = [row(r, notes=False) for r in results_of(data) if in_readme(r)]
    return "\n".join([run_line(data), "", *header(notes=False), *rows])
