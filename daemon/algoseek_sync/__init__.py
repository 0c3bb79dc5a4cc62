"""algoseek-sync: keep a data store in sync with an Algoseek vendor drop directory.

The data path reads top to bottom: ``scan``/``watcher`` → ``ledger`` → ``worker``
→ ``formats`` (pure parsing) → ``backends`` (embedded SQLite or Main Sequence).
"""

__version__ = "0.1.0"
