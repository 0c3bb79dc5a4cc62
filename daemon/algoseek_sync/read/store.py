"""The store as a quant reads it: bars by identifier and date range, cross-sections, the universe.

Point in time and survivorship-free: a SecId's history stays readable under every identifier
that ever routed it, a cross-section holds every security with a bar that day, tickers resolve
on the date asked, and the universe comes from the dated master history, not from today's master.

Read-only: the state database is opened ``mode=ro`` (SQLite WAL), so a :class:`Store` never
blocks the daemon and always sees whole committed batches.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeAlias

from algoseek_sync.backends.base import BarQuery
from algoseek_sync.errors import AmbiguousQueryError, ConfigError, UserInputError
from algoseek_sync.formats.datasets import DATASETS
from algoseek_sync.read import catalog, frames
from algoseek_sync.read.dates import DateLike, date_range, day_number, iso_day
from algoseek_sync.read.resolve import resolve, target
from algoseek_sync.state.database import Database
from algoseek_sync.state.ledger import Ledger
from algoseek_sync.state.securities import Securities

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from algoseek_sync.backends.base import Backend
    from algoseek_sync.config import Settings

OutputFormat: TypeAlias = Literal["pandas", "arrow"]
Result: TypeAlias = "pd.DataFrame | pa.Table"
STATE_FILE = "state.db"


def open_store(path: str | Path) -> Store:
    """The embedded store of a state directory (or its ``state.db``), read-only."""
    where = Path(path)
    db_path = where / STATE_FILE if where.is_dir() else where
    from algoseek_sync.backends.local import LocalBackend

    db = _open(db_path)
    return Store(db, LocalBackend(db))


def _open(db_path: Path) -> Database:
    if not db_path.is_file():
        raise ConfigError(f"no state database at {db_path}: run `algoseek-sync run` first (state.dir)")
    db = Database(db_path, readonly=True)
    if db.version == 0:
        db.close()
        raise ConfigError(
            f"state database at {db_path} is not initialised yet: run `algoseek-sync run` first"
        )
    return db


class Store:
    """Reads of one state directory through its backend (the embedded store, or the platform)."""

    def __init__(self, db: Database, backend: Backend) -> None:
        self.db = db
        self.backend = backend
        self.securities = Securities(db)

    @classmethod
    def for_settings(cls, settings: Settings) -> Store:
        """The configured backend (``backend.kind``), for the CLI."""
        from algoseek_sync.backends import open_backend

        db = _open(settings.db_path)
        return cls(db, open_backend(settings, db))

    def close(self) -> None:
        self.backend.close()
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what is there ---------------------------------------------------------------------
    def datasets(self) -> list[str]:
        """Datasets holding bars."""
        return self.backend.datasets() if self._local else sorted(Ledger(self.db).datasets())

    @property
    def _local(self) -> bool:
        return self.backend.name == "local"

    # -- reads -----------------------------------------------------------------------------
    def bars(
        self,
        ticker: str | None = None,
        *,
        figi: str | None = None,
        secid: int | None = None,
        dataset: str | None = None,
        start: DateLike | None = None,
        end: DateLike | None = None,
        on: DateLike | None = None,
        adjusted: bool = False,
        output_format: OutputFormat = "pandas",
    ) -> Result:
        """Daily bars of one security, sorted by (time_index, unique_identifier).

        Name it by ``ticker`` (resolved on ``on``, else within ``[start, end]``, else its most
        recent carrier), ``figi`` (a FIGI or custom id) or ``secid``. A SecId's rows come under each
        identifier it has had. ``adjusted``: backward-adjusted OHLC and volume as of the latest factors.
        """
        first, last = date_range(start, end)
        named = target(
            self.securities,
            figi=figi,
            secid=secid,
            ticker=ticker,
            on=iso_day(on, "on"),
            start=first,
            end=last,
        )
        chosen = self._choose(dataset, self._holding(named.secids), named.label)
        if chosen is None:
            return _empty(None, f"{named.label} has no bars in any stored dataset", output_format)
        frame = self.backend.read_bars(BarQuery(chosen, named.uids, first, last, adjusted))
        if named.only_secids:
            frame = frame[frame["secid"].isin(named.secids)]
        span = f" between {first or 'the first day'} and {last or 'the last day'}" if first or last else ""
        return _result(frame, chosen, f"{named.label} has no bars in {chosen}{span}", output_format)

    def cross_section(
        self, date: DateLike, *, dataset: str | None = None, output_format: OutputFormat = "pandas"
    ) -> Result:
        """Every security's bar on ``date``: each SecId with a bar that day, whatever today's master says."""
        day = iso_day(date, "date")
        assert day is not None
        chosen = self._choose(dataset, self._holding_day(day_number(day)), f"trade date {day}")
        if chosen is None:
            return _empty(None, f"no dataset holds a bar on {day}", output_format)
        frame = self.backend.read_day(chosen, day)
        return _result(
            frame, chosen, f"no bars on {day} in {chosen} (not a session, or not delivered)", output_format
        )

    def universe(self, date: DateLike, *, output_format: OutputFormat = "pandas") -> Result:
        """SecIds listed on ``date`` (a ticker span covers it) with their ticker, name and identifiers then."""
        day = iso_day(date, "date")
        frame = catalog.universe_frame(self.db, day)  # type: ignore[arg-type]
        why = (
            "no security master applied yet"
            if not self.securities.has_master()
            else f"no SecId listed on {day}"
        )
        return _convert(_noted(frame, why), output_format)

    def resolve(self, ticker: str, date: DateLike) -> int:
        """The SecId that carried ``ticker`` (case-sensitive) on ``date``."""
        return resolve(self.securities, ticker, iso_day(date, "date"))

    def assets(
        self, *, current: bool = False, dataset: str | None = None, output_format: OutputFormat = "pandas"
    ) -> Result:
        """Every identifier that ever routed a SecId, with ``active`` = listed by the current master."""
        secids = None
        if dataset is not None:
            self._choose(dataset, [], "")
            secids = Ledger(self.db).secids_of_dataset(dataset)
        frame = catalog.assets_frame(self.db, current=current, secids=secids)
        return _convert(_noted(frame, "no assets: no security master applied yet"), output_format)

    # -- which dataset ---------------------------------------------------------------------
    def _choose(self, requested: str | None, holding: list[str], what: str) -> str | None:
        return choose_dataset(requested, holding, self.datasets(), what)

    def _holding(self, secids: list[int]) -> list[str]:
        """Datasets with bars of any of ``secids``."""
        if not self._local:
            ledger = Ledger(self.db)
            return [d for d in sorted(ledger.datasets()) if ledger.secids_of_dataset(d) & set(secids)]
        return catalog.datasets_holding(self.db, secids)

    def _holding_day(self, day: int) -> list[str]:
        if not self._local:
            return self.datasets()
        return catalog.datasets_on(self.db, day)


def choose_dataset(requested: str | None, holding: list[str], stored: list[str], what: str) -> str | None:
    """The dataset asked for (it must be stored), else the only one holding ``what``, else the only
    one stored; ``None`` when no dataset can answer (the read is then empty, with a note)."""
    if requested is not None:
        if requested not in DATASETS:
            raise UserInputError(f"unknown dataset {requested!r}: choose one of {', '.join(DATASETS)}")
        if requested not in stored:
            raise UserInputError(
                f"dataset {requested} holds no bars in this store (stored: {', '.join(stored) or 'none'})"
            )
        return requested
    if len(holding) > 1:
        raise AmbiguousQueryError(
            f"{what} is in several datasets ({', '.join(holding)}): choose one with dataset= (--dataset)"
        )
    if holding:
        return holding[0]
    return stored[0] if len(stored) == 1 else None


def _result(frame: pd.DataFrame, dataset: str | None, why: str, output_format: OutputFormat) -> Result:
    shaped = frames.bars_frame(frame, dataset)
    shaped.attrs["dataset"] = dataset  # the CLI's headers follow it, rows or not
    return _convert(_noted(shaped, why), output_format)


def _empty(dataset: str | None, why: str, output_format: OutputFormat) -> Result:
    import pandas as pd

    return _result(pd.DataFrame(), dataset, why, output_format)


def _noted(frame: pd.DataFrame, why: str) -> pd.DataFrame:
    """An empty answer carries why it is empty (``frame.attrs["note"]``): the CLI prints it on stderr."""
    if frame.empty:
        frame.attrs["note"] = why
    return frame


def _convert(frame: pd.DataFrame, output_format: OutputFormat) -> Result:
    if output_format == "pandas":
        return frame
    if output_format == "arrow":
        import pyarrow as pa

        table = pa.Table.from_pandas(frame, preserve_index=False)
        note = frame.attrs.get("note")
        return (
            table.replace_schema_metadata({**(table.schema.metadata or {}), b"note": note.encode()})
            if note
            else table
        )
    raise UserInputError(f"output_format {output_format!r}: choose 'pandas' or 'arrow'")
