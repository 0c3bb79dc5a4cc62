"""Benchmark 10, one changed file, whole process: ``run --once`` after one SecId file is re-delivered.

Why: a cron-style ``run --once`` on a 10,000-SecId drop where one file changed must cost
about what starting Python costs (goal ≤ 0.4 s): no eager imports of numpy/pyarrow/pandas
when nothing needs them, a stat-only reconcile, one file parsed and stored. It runs next to
a ``run --once`` with nothing to do, to ``python -c pass`` and to the import floor: the
third-party and standard libraries any parsing run needs, imported without the package
itself. What the release stopped importing (pandas, pydantic, rich) is timed on top of that
floor, and msgspec's share of it, in the same loop. ``python -X importtime`` and cProfile
of one more such run go to results.md to show where the time goes.
"""

from __future__ import annotations

import re
import sys

from common import CLI, Result, Run, cli_env, median, redeliver, run_process
from context import Context

from algoseek_sync.synthetic.generate import trade_dates

#: structlog imported the way the CLI imports it (``algoseek_sync/__init__.py`` hides rich from it)
STRUCTLOG = 'import sys; sys.modules["rich"] = None; import structlog; del sys.modules["rich"]'
#: the libraries any run that parses and stores a file must import, whatever the code around it
LIBRARIES = ("sqlite3", "click", "msgspec", "numpy", "pyarrow", "pyarrow.compute", "pyarrow.csv")


def imports(libraries: tuple[str, ...] = LIBRARIES, structlog: str = STRUCTLOG, more: str = "") -> str:
    """A ``python -c`` program importing structlog and ``libraries`` (then ``more``), nothing of ours."""
    return f"{structlog}; import {', '.join(libraries)}{f'; import {more}' if more else ''}"


PARSING_IMPORTS = imports()
#: the floor's variants, timed in the same loop: name → (program, what its difference to the floor shows)
VARIANTS = {
    "pandas": (
        imports(more="pandas"),
        "pandas on top of the floor (pyarrow imports it to check it is there)",
    ),
    "pydantic": (
        imports(more="pydantic"),
        "pydantic on top of the floor (settings are validated by msgspec)",
    ),
    "rich": (
        imports(structlog="import structlog"),
        "structlog with rich visible, as it imports it by default",
    ),
    "msgspec": (imports(tuple(m for m in LIBRARIES if m != "msgspec")), "msgspec's share of the floor"),
}
IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)")


def checked(run: Run, done: int) -> Run:
    """A ``run --once`` that exited 0 having applied ``done`` file(s)."""
    if run.code != 0 or run.count("done") != done:
        raise RuntimeError(f"run --once: exit {run.code}, expected done {done}: {run.stderr[-800:]}")
    return run


def importtime_top(stderr: str, limit: int = 25) -> str:
    """``-X importtime`` output as the top modules by cumulative time, then by self time (ms)."""
    entries = []
    for line in stderr.splitlines():
        found = IMPORT_LINE.match(line)
        if found:
            own, total, indent, name = found.groups()
            entries.append((int(total) / 1000, int(own) / 1000, len(indent) // 2, name))
    outer = sum(total for total, _, depth, _ in entries if depth == 0)
    lines = [
        f"all imports: {outer:.0f} ms (sum of the top-level cumulative times)",
        "",
        "cumulative ms  self ms  module",
    ]
    lines += [f"{t:13.1f} {s:8.1f}  {'  ' * d}{n}" for t, s, d, n in sorted(entries, reverse=True)[:limit]]
    lines += ["", "by self time:", "self ms  module"]
    lines += [f"{s:7.1f}  {n}" for _, s, _, n in sorted(entries, key=lambda e: -e[1])[:12]]
    return "\n".join(lines)


def cprofile_top(stdout: str, limit: int = 30) -> str:
    """The head of ``python -m cProfile -s cumulative`` output (its table, first ``limit`` rows)."""
    lines = stdout.splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    return "\n".join(line.rstrip() for line in lines[start : start + limit + 1])


def bench_onefile(ctx: Context) -> list[Result]:
    plan = ctx.plan
    spec = ctx.backfill_spec()
    drop, state = ctx.backfill_state()
    env = cli_env(drop, state)
    once = [str(CLI), "run", "--once"]
    checked(run_process(once, env), 0)  # warm the page cache; the state must be settled
    secid = spec.first_secid + spec.secids // 2
    walls: dict[str, list[float]] = {"pass": [], "imports": [], "idle": [], "changed": []}
    walls.update({name: [] for name in VARIANTS})
    for k in range(plan.onefile_reps):  # interleaved: a noisy neighbour hits them all alike
        walls["pass"].append(run_process([sys.executable, "-c", "pass"]).seconds)
        walls["imports"].append(run_process([sys.executable, "-c", PARSING_IMPORTS]).seconds)
        for name, (program, _) in VARIANTS.items():
            walls[name].append(run_process([sys.executable, "-c", program]).seconds)
        walls["idle"].append(checked(run_process(once, env), 0).seconds)
        redeliver(drop, spec, secid, trade_dates(spec, extra=k + 1))
        walls["changed"].append(checked(run_process(once, env), 1).seconds)
    extra = plan.onefile_reps
    redeliver(drop, spec, secid, trade_dates(spec, extra=extra + 1))
    imports = checked(run_process([sys.executable, "-X", "importtime", *once], env), 1)
    redeliver(drop, spec, secid, trade_dates(spec, extra=extra + 2))
    profiled = checked(run_process([sys.executable, "-m", "cProfile", "-s", "cumulative", *once], env), 1)
    out = onefile_results(spec.secids, walls)
    goal = next(r for r in out if r.met is not None)
    goal.extra["profile_importtime"] = importtime_top(imports.stderr)
    goal.extra["profile_cprofile"] = cprofile_top(profiled.stdout)
    return out


def onefile_results(secids: int, walls: dict[str, list[float]]) -> list[Result]:
    changed, idle, start = median(walls["changed"]), median(walls["idle"]), median(walls["pass"])
    floor = median(walls["imports"])
    return [
        Result(
            "10 one changed file",
            "`python -c pass` (interpreter start)",
            start,
            "s",
            samples=walls["pass"],
            notes="the venv's interpreter, as the CLI's",
        ),
        Result(
            "10 one changed file",
            "import floor of a run that parses a file",
            floor,
            "s",
            samples=walls["imports"],
            readme=True,
            notes=f"`python -c '{PARSING_IMPORTS}'`: the libraries the data path cannot do without,"
            " without the package itself",
        ),
        Result(
            "10 one changed file",
            f"`run --once`, nothing to do, {secids:,} SecIds",
            idle,
            "s",
            samples=walls["idle"],
            readme=True,
            notes="whole process: start-up, settings, state database, stat-only reconcile of the drop",
        ),
        Result.bounded(
            "10 one changed file",
            f"`run --once`, one re-delivered SecId file, {secids:,} SecIds",
            changed,
            "s",
            0.4,
            "≤ 0.4 s",
            samples=walls["changed"],
            notes=f"the file's whole history + one new day, new bytes; {changed - idle:+.3f}s over nothing to do,"
            f" {changed - floor:+.3f}s over the import floor; n={len(walls['changed'])}",
        ),
        *import_costs(walls),
    ]


def import_costs(walls: dict[str, list[float]]) -> list[Result]:
    """Each variant's difference to the floor, as the median of per-round differences (paired)."""
    out = []
    for name, (program, shows) in VARIANTS.items():
        paired = [a - b for a, b in zip(walls[name], walls["imports"], strict=True)]
        if name == "msgspec":  # the variant is the floor without it: its share is the other way round
            paired = [-d for d in paired]
        out.append(
            Result(
                "10 one changed file",
                f"import cost: {name}",
                median(paired),
                "s",
                samples=paired,
                readme=True,
                notes=f"{shows}; `python -c '{program}'` vs the floor, median of per-round differences",
            )
        )
    return out
