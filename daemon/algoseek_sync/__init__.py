"""algoseek-sync: keep a data store in sync with an Algoseek vendor drop directory.

The data path reads top to bottom: ``scan``/``observer`` → ``ledger`` → ``worker``
→ ``prepare`` (read and parse, with ``formats``) → ``backends`` (embedded SQLite or Main Sequence).
"""

__version__ = "0.1.0"


def _structlog_without_rich() -> None:
    """Import structlog before anything else does, with ``rich`` hidden from it.

    structlog imports ``rich`` (installed here by the platform SDK's CLI) to pretty-print
    tracebacks: a tenth of a second on every command, for output we never use (our
    tracebacks are plain text, in JSON or on the console). A ``None`` entry in
    ``sys.modules`` makes that optional import fail as if rich were absent; it is removed
    right after, so code that wants rich still gets it.
    """
    import sys

    if "structlog" in sys.modules or "rich" in sys.modules:
        return
    sys.modules["rich"] = None  # type: ignore[assignment]
    try:
        import structlog  # noqa: F401
    finally:
        del sys.modules["rich"]


_structlog_without_rich()
