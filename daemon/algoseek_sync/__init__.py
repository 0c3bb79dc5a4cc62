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

#: the public read API (``algoseek_sync.open_store``), imported on first use so that the CLI's
#: start-up does not pay for pandas
_READ_API = ("open_store", "Store", "UnknownIdentifierError", "AmbiguousQueryError", "UserInputError")
__all__ = ["__version__", *_READ_API]


def __getattr__(name: str) -> object:
    if name in _READ_API:
        from algoseek_sync import read

        return getattr(read, name)
    raise AttributeError(f"module 'algoseek_sync' has no attribute {name!r}")
