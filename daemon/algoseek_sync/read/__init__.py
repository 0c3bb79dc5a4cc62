"""Reading the store in Python, point in time: ``open_store(state_dir)`` → :class:`Store`.

Example::

    import algoseek_sync
    with algoseek_sync.open_store("var/state") as store:
        store.bars(ticker="AAPL", start="2020-01-01", end="2020-12-31", adjusted=True)
"""

from algoseek_sync.errors import AmbiguousQueryError, UnknownIdentifierError, UserInputError
from algoseek_sync.read.store import Store, open_store

__all__ = ["AmbiguousQueryError", "Store", "UnknownIdentifierError", "UserInputError", "open_store"]
