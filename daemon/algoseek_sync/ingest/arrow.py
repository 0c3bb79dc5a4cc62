"""pyarrow without its pandas probe: the embedded store's data path never needs pandas.

On its first conversion of Python or numpy values (``pa.array``, ``to_numpy``), pyarrow
checks whether pandas is installed by importing it: 0.2–0.3 s, more than the whole parse
and store of a re-delivered file. Running those checks once with pandas hidden records
"no pandas" for them; ``to_pandas`` still imports pandas when called. What is lost: pandas'
own missing values (``pd.NA``, ``pd.NaT``) inside Python objects handed to pyarrow are no
longer recognised as nulls, so only a process that never gives pandas objects to pyarrow
may call this (the embedded store's worker; the platform backend's does, see
``Backend.uses_pandas``).
"""

from __future__ import annotations

import sys
from importlib.machinery import ModuleSpec

import pyarrow


class _NoPandas:
    """A meta-path finder that says pandas is not installed (while the probe runs)."""

    @staticmethod
    def find_spec(name: str, path: object = None, target: object = None) -> ModuleSpec | None:
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


def skip_pandas_probe() -> None:
    """Answer pyarrow's "is pandas installed?" with no, unless pandas is already imported."""
    if "pandas" in sys.modules:
        return
    finder = _NoPandas()
    sys.meta_path.insert(0, finder)
    try:
        pyarrow.lib._pandas_api.have_pandas  # noqa: B018  # the Python-side probe, answered now
        pyarrow.chunked_array([[0]]).to_numpy()  # and the C++ side's (its pandas sentinels)
    finally:
        sys.meta_path.remove(finder)
