"""``algoseek-sync report --html``: the page, opened in a real headless browser (Debian's chromium).

The browser runs the page's scripts; the tests read the DOM it dumps afterwards (heatmap
cells, findings rows, chart markers, ``#script-errors``), its console log, and a screenshot.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import sqlite3
import stat
import struct
import subprocess
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from algoseek_sync.commands.report import render
from algoseek_sync.commands.report_data import MAX_GROUPS, Coverage, ReportData, coverage_from_chunks
from algoseek_sync.quality.calendar import Sessions
from algoseek_sync.quality.kinds import SEVERITY
from conftest import AAPL_SAMPLE, Sandbox, planted_drop

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


# -- the browser --------------------------------------------------------------------------------------


def chromium() -> str:
    """The browser the Makefile exports as ``CHROMIUM``, else the lookup it makes (``command -v
    chromium``, which like ``shutil.which`` also vets a path), so the test and make never disagree."""
    wanted = os.environ.get("CHROMIUM") or "chromium"
    found = shutil.which(wanted)
    if found is None:
        pytest.fail(
            f"{wanted} is not an executable (CHROMIUM, else chromium on PATH): `make tools` installs"
            " Debian's (apt-get install --no-install-recommends chromium)"
        )
    return found


def browser(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=90,
    )


def rendered(page: Path, profile: Path) -> tuple[Node, str]:
    """The DOM after the page's scripts ran, and the browser's log (console lines included)."""
    proc = browser(
        profile, "--enable-logging=stderr", "--v=0", "--virtual-time-budget=2000", "--dump-dom", page.as_uri()
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return parse(proc.stdout), proc.stderr


def assert_no_script_errors(dom: Node, log: str, page: Path) -> None:
    errors = dom.by_id("script-errors")
    assert errors.text() == "" and "hidden" in errors.attrs, errors.text()
    # the page never writes to the console: any console line from it is an error
    console = [
        line for line in log.splitlines() if "Uncaught" in line or ("CONSOLE" in line and page.name in line)
    ]
    console += [line for line in log.splitlines() if "CONSOLE" in line and ":ERROR:" in line]
    assert console == []


def png_facts(path: Path) -> tuple[int, int, float]:
    """(width, height, share of non-zero bytes in the filtered image data): a blank page is ~0."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    at, idat, size = 8, b"", (0, 0)
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        if kind == b"IHDR":
            size = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        at += 12 + length
    raw = zlib.decompress(idat)
    sample = raw[::31]
    return size[0], size[1], sum(1 for b in sample if b) / len(sample)


# -- a small DOM ----------------------------------------------------------------------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)

    def walk(self) -> Iterator[Node]:
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.walk()

    def find(self, tag: str, cls: str | None = None) -> list[Node]:
        return [
            n
            for n in self.walk()
            if n.tag == tag and (cls is None or cls in n.attrs.get("class", "").split())
        ]

    def by_id(self, name: str) -> Node:
        found = [n for n in self.walk() if n.attrs.get("id") == name]
        assert found, f"no element with id={name!r}"
        return found[0]

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children).strip()


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(html: str) -> Node:
    builder = _Builder()
    builder.feed(html)
    builder.close()
    return builder.root


def findings_rows(dom: Node) -> list[dict[str, str]]:
    table = dom.by_id("findings")
    heads = [th.text() for th in table.find("th")]
    rows = []
    for tr in table.find("tbody")[0].find("tr"):
        cells = dict(zip(heads, [td.text() for td in tr.find("td")], strict=True))
        rows.append({**cells, "hidden": "hidden" in tr.attrs})
    return rows


# -- a generated drop with planted problems --------------------------------------------------------------

PROBE = """<script>
(function(){
  function visible(){return [].filter.call(document.querySelectorAll('#findings tbody tr'),
    function(r){return !r.hidden;}).length;}
  function set(id,value,event){var e=document.getElementById(id);e.value=value;e.dispatchEvent(new Event(event));}
  var out={all:visible()};
  set('f-kind','stale_price','change');out.stale=visible();set('f-kind','','change');
  set('f-sev','error','change');out.errors=visible();set('f-sev','','change');
  set('f-secid','SECID','input');out.secid=visible();
  set('f-secid','no such thing','input');out.none=visible();out.shown=document.getElementById('f-shown').textContent;
  var pre=document.createElement('pre');pre.id='probe';pre.textContent=JSON.stringify(out);document.body.appendChild(pre);
})();
</script></body>"""


def test_a_generated_drops_report_renders_in_a_browser_with_the_planted_findings(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    planted = planted_drop(sandbox, tmp_path / "planted.json", "--secids", "40", "--days", "60")
    page = tmp_path / "report.html"
    out = sandbox.cli("report", "--html", str(page)).out
    size = page.stat().st_size
    assert f"wrote {page} ({size:,} bytes)" in out
    text = page.read_text()
    assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in text

    # a screenshot, and it is not blank
    png = tmp_path / "report.png"
    shot = browser(tmp_path / "profile", f"--screenshot={png}", "--window-size=1400,1800", page.as_uri())
    assert png.exists(), shot.stderr[-2000:]
    width, height, ink = png_facts(png)
    assert (width, height) == (1400, 1800)
    assert png.stat().st_size > 40_000 and ink > 0.005, (
        f"a blank screenshot? ({png.stat().st_size} bytes, {ink})"
    )

    dom, log = rendered(page, tmp_path / "profile")
    assert_no_script_errors(dom, log, page)

    # the heatmap: one cell per (SecId, month) stored, 40 SecIds = 40 groups of one
    with sqlite3.connect(f"file:{sandbox.state / 'state.db'}?mode=ro", uri=True) as db:
        months = db.execute(
            "SELECT count(*) FROM (SELECT DISTINCT secid, period FROM bar_chunks)"
        ).fetchone()[0]
    cells = dom.by_id("coverage").find("rect", "cell")
    assert len(cells) == months
    assert len({c.attrs["y"] for c in cells}) == 40
    gap = next(p for p in planted if p["kind"] == "missing_session")
    gap_cell = next(
        c for c in cells if c.text().startswith(f"SecId {gap['secid']}, month {gap['start_date'][:7]}")
    )
    assert "c0" not in gap_cell.attrs["class"] and "100 %" not in gap_cell.text()
    assert str(gap["secid"]) in dom.by_id("lowest").text()

    # the findings table: exactly the planted findings, newest first
    rows = findings_rows(dom)
    assert {(r["Kind"], r["SecId"], r["From"], r["To"]) for r in rows} == {
        (p["kind"], str(p["secid"]), p["start_date"], p["end_date"]) for p in planted
    }
    assert [r["From"] for r in rows] == sorted((r["From"] for r in rows), reverse=True)
    assert not any(r["hidden"] for r in rows)
    assert dom.by_id("f-shown").text() == f"{len(planted)} of {len(planted)} rows shown"
    assert "high_below_low" in dom.by_id("finding-counts").text()

    # the chart of the SecId with the most open findings (one each: errors first, then the lowest SecId)
    errors = [p for p in planted if SEVERITY[p["kind"]] == "error"]
    worst = min(errors, key=lambda p: p["secid"])
    chart = dom.by_id(f"chart-{worst['secid']}")
    assert chart.find("path", "close")
    (marker,) = chart.find("g", "finding")
    assert "sev-error" in marker.attrs["class"] and worst["kind"] in marker.text()
    assert len(dom.find("svg", "chart")) == 1

    # the filters, driven in the browser
    jump = next(p for p in planted if p["kind"] == "unexplained_jump")
    probe_page = tmp_path / "probe.html"
    probe_page.write_text(text.replace("</body>", PROBE.replace("SECID", str(jump["secid"]))))
    probed, probe_log = rendered(probe_page, tmp_path / "profile")
    assert_no_script_errors(probed, probe_log, probe_page)
    assert json.loads(probed.by_id("probe").text()) == {
        "all": len(planted),
        "stale": 1,
        "errors": len(errors),
        "secid": 1,
        "none": 0,
        "shown": f"0 of {len(planted)} rows shown",
    }


# -- the real AAPL sample ---------------------------------------------------------------------------------


def test_the_aapl_samples_report_marks_its_corporate_actions_and_findings(
    sandbox: Sandbox, samples: Callable[[Sandbox], None], tmp_path: Path
) -> None:
    samples(sandbox)
    sandbox.cli("run", "--once")
    page = tmp_path / "aapl.html"
    sandbox.cli("report", "--html", str(page), "--ticker", "AAPL")
    with sqlite3.connect(f"file:{sandbox.state / 'state.db'}?mode=ro", uri=True) as db:
        found = db.execute("SELECT kind, severity FROM findings WHERE resolved_at IS NULL").fetchall()
    with AAPL_SAMPLE.open() as f:
        bars = list(csv.DictReader(f))
    events = [b for b in bars if b["AdjustmentFactor"] or b["AdjustmentReason"]]
    assert len(events) == 32  # the 7:1 split and 31 dividends

    dom, log = rendered(page, tmp_path / "profile")
    assert_no_script_errors(dom, log, page)
    chart = dom.by_id("chart-33449")
    assert len(chart.find("g", "event")) == len(events)
    split = [g.text() for g in chart.find("g", "event") if "2014-06-09" in g.text()]
    assert len(split) == 1 and "0.142857" in split[0]
    markers = chart.find("g", "finding")
    assert len(markers) == len(found) == 73
    assert sum("sev-error" in m.attrs["class"] for m in markers) == sum(s == "error" for _, s in found) == 38
    # one SecId, by month: one cell per month of its history, all complete
    cells = dom.by_id("coverage").find("rect", "cell")
    assert len(cells) == len({b["TradeDate"][:6] for b in bars})
    assert all("c0" in c.attrs["class"].split() for c in cells)
    assert len(findings_rows(dom)) == 73

    # user mistakes: one line, exit 2, nothing written (the first through a real process)
    target = str(tmp_path / "x.html")
    result = sandbox.cli("report", "--html", target, "--secid", "999999", check=False)
    assert (result.code, result.err) == (
        2,
        "algoseek-sync: unknown SecId 999999: no applied security master listed it\n",
    )
    for args, message in (
        ([target, "--ticker", "NOPE"], "unknown ticker 'NOPE'"),
        ([str(tmp_path / "missing" / "r.html")], "does not exist"),
        ([str(page / "r.html")], "is not a directory"),
        (["/dev/full"], "cannot write the report to /dev/full: No space left on device"),
    ):
        code, err = in_process(sandbox, "report", "--html", *args)
        assert code == 2, err
        assert message in err and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "x.html").exists()
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)  # written through, never replaced


def in_process(box: Sandbox, *args: str) -> tuple[int, str]:
    """The CLI without a new interpreter (a few seconds less per call): exit code and stderr."""
    from click.testing import CliRunner

    from algoseek_sync.commands.cli import main

    env: dict[str, str | None] = {
        k: None for k in os.environ if k.startswith(("ALGOSEEK_SYNC_", "MAINSEQUENCE"))
    }
    env.update(ALGOSEEK_SYNC_DROP_DIR=str(box.drop), ALGOSEEK_SYNC_STATE_DIR=str(box.state))
    handlers, level = logging.root.handlers[:], logging.root.level
    try:
        result = CliRunner().invoke(main, list(args), env=env)
    finally:  # the CLI points stdlib logging at the runner's stderr, closed after the call
        logging.root.handlers[:], logging.root.level = handlers, level
    return result.exit_code, result.stderr


# -- in process: 10,000 SecIds, and a store without chunks -------------------------------------------------


def weekdays(first: str, last: str) -> Sessions:
    days = np.arange(np.datetime64(first), np.datetime64(last) + 1)
    days = days[np.is_busday(days)]
    dates = np.array([int(str(d).replace("-", "")) for d in days], dtype=np.int64)
    return Sessions("weekdays", dates, np.zeros(len(dates)))


def test_coverage_of_ten_thousand_secids_is_two_hundred_groups_and_the_twenty_worst() -> None:
    sessions = weekdays("2024-01-01", "2024-03-31")  # 23, 21 and 21 sessions; the chunks end on the 29th
    missing = {10_000 + 475 * k: k for k in range(1, 22)}  # 21 SecIds miss 1..21 days of February
    chunks = [
        (
            secid,
            period,
            period * 100 + 1,
            period * 100 + 29,
            rows - (missing.get(secid, 0) if period == 202402 else 0),
        )
        for secid in range(10_000, 20_000)
        for period, rows in ((202401, 23), (202402, 21), (202403, 21))
    ]
    # SecId 10001 has 21 rows in March, one of them on a Saturday (an open non_session_row finding)
    cov = coverage_from_chunks(np.array(chunks, dtype=np.int64), sessions, {(10_001, 202403): 1})
    assert len(cov.groups) == MAX_GROUPS and all(g.size == 50 for g in cov.groups)
    assert cov.columns == ["2024-01", "2024-02", "2024-03"] and cov.bucket == "month"
    assert (cov.secids, cov.incomplete) == (10_000, 22)
    assert cov.expected == 10_000 * 65 and cov.present == cov.expected - sum(missing.values()) - 1
    assert [c.secid for c in cov.lowest] == [10_000 + 475 * k for k in range(21, 1, -1)]
    assert cov.lowest[0].share == 44 / 65
    group = next(g for g in cov.groups if g.first_secid <= 19_975 <= g.last_secid)
    january, february, _ = group.cells
    assert january is not None and january.share == 1.0
    assert february is not None and (february.worst_secid, february.worst_share) == (19_975, 0.0)
    assert february.share == 49 / 50 and february.secids == 50

    page = render(ReportData("primary", "local", "now", "/state", cov, [], 0, {}, [], "No findings."))
    assert page.count('<rect class="cell') == 600
    assert "worst SecId 19975: 0.0 %" in page
    assert len(page) < 200_000


def test_without_the_embedded_store_the_heatmap_says_why_and_the_rest_renders() -> None:
    note = "Coverage is only computed from the embedded store; this state directory writes to the mainsequence backend."
    finding = {
        "kind": "stale_price",
        "severity": "warning",
        "dataset": "primary",
        "secid": 7,
        "unique_identifier": "BBG000000007",
        "start_date": 20240102,
        "end_date": 20240110,
        "observed": {"close": 1.5, "sessions": 6},
    }
    data = ReportData(
        "primary",
        "mainsequence",
        "now",
        "/s",
        Coverage(False, note),
        [finding],
        1,
        {("stale_price", "warning"): 1},
        [],
    )
    page = render(data)
    assert note in page and 'id="coverage"' not in page
    assert 'id="findings"' in page and "BBG000000007" in page and 'id="script-errors"' in page
