"""``algoseek-sync`` with the worker's parse-ahead depth set: ``python bench/parse_ahead_cli.py N run --once``.

Why: the release parses ``PARSE_AHEAD`` (2) batches on other threads while it writes one; the
parse-ahead benchmark runs the real CLI with 1, 2 and 3 to show that choice is measured, not
assumed. Only that one module constant differs from the installed command; nothing else of
the benchmark harness is imported, so the process's memory is the command's own.
"""

from __future__ import annotations

import sys

from algoseek_sync.commands.cli import main
from algoseek_sync.ingest import worker

if __name__ == "__main__":
    worker.PARSE_AHEAD = int(sys.argv[1])
    main(sys.argv[2:], prog_name="algoseek-sync")
