"""Run a command; print its peak RSS and CPU seconds (from wait4) as JSON on stderr's last line.

Why a separate tiny process: Linux counts the memory a child had *before* ``exec`` in its
``ru_maxrss``, and a child forked from the (large) benchmark process starts with the
benchmark's address space. Forked from this small interpreter instead, the figure is the
command's own. The CPU seconds are the command's and its waited-for children's, all threads.
Standard library only; ``python bench/rss.py CMD ARGS...``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time


def main(argv: list[str]) -> int:
    began = time.perf_counter()
    proc = subprocess.Popen(argv)
    for signum in (signal.SIGTERM, signal.SIGINT):  # a long-running command is stopped through us
        signal.signal(signum, lambda received, _frame: proc.send_signal(received))
    _, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    report = {
        "code": code,
        "maxrss_bytes": usage.ru_maxrss * 1024,
        "seconds": time.perf_counter() - began,
        "user": usage.ru_utime,
        "sys": usage.ru_stime,
    }
    print(json.dumps(report), file=sys.stderr, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
