"""The ``algoseek-sync`` command line: parse arguments, call one function, format output.

Heavy modules (pandas, pyarrow, the platform SDK) are imported inside the commands that
need them, so ``--help``, ``status --health`` and a ``run --once`` with nothing to do start fast.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import click

from algoseek_sync import __version__
from algoseek_sync.config import CONFIG_ENV, Settings, load_settings
from algoseek_sync.errors import (
    EX_CONFIG,
    EX_PROBLEMS,
    EX_TEMPFAIL,
    EX_UNAVAILABLE,
    EX_USAGE,
    AlgoseekSyncError,
    BackendUnavailableError,
    ConfigError,
    TemporaryFailure,
    UserInputError,
)
from algoseek_sync.logging import configure_logging

DATASET_NAMES = ["primary", "primary-adjusted", "standard-adjusted"]
TABULAR = click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True
)


def _fail(message: str, code: int) -> None:
    click.echo(f"algoseek-sync: {message}", err=True)
    sys.exit(code)


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """User mistakes become one line on stderr and a meaningful exit code, never a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            _fail(str(exc), EX_CONFIG)
        except UserInputError as exc:
            _fail(str(exc), EX_USAGE)
        except TemporaryFailure as exc:
            _fail(str(exc), EX_TEMPFAIL)
        except BackendUnavailableError as exc:
            _fail(f"backend unavailable: {exc}", EX_UNAVAILABLE)
        except AlgoseekSyncError as exc:
            _fail(str(exc), EX_PROBLEMS)
        except sqlite3.DatabaseError as exc:  # disk full, I/O error, a damaged state.db
            _fail(f"state database error: {exc} (check free space and the state directory)", EX_UNAVAILABLE)

    return wrapper


def settings_of(ctx: click.Context) -> Settings:
    """Load settings once per invocation and configure logging from them."""
    obj = ctx.ensure_object(dict)
    if "settings" not in obj:
        settings = load_settings(obj.get("config"))
        configure_logging(settings.logging.level, settings.logging.format)
        obj["settings"] = settings
    return obj["settings"]


def _date(value: str | None, param: str) -> str | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)", param_hint=param) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config",
    type=click.Path(),
    envvar=CONFIG_ENV,
    help=f"TOML configuration file (or ${CONFIG_ENV}).",
)
@click.version_option(__version__, prog_name="algoseek-sync")
@click.pass_context
def main(ctx: click.Context, config: str | None) -> None:
    """Keep a store in sync with an Algoseek vendor drop directory."""
    ctx.ensure_object(dict)["config"] = config


@main.command()
@click.option("--once", is_flag=True, help="Ingest what is in the drop directory now, then exit.")
@click.pass_context
@handle_errors
def run(ctx: click.Context, once: bool) -> None:
    """Watch the drop directory and keep the store in sync (until SIGTERM)."""
    settings = settings_of(ctx)
    if once:
        from algoseek_sync.commands.once import run_once_command

        sys.exit(run_once_command(settings))
    from algoseek_sync.service.daemon import serve

    sys.exit(serve(settings))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--health", is_flag=True, help="Exit 0 if a daemon runs and its work moves (see README).")
@click.pass_context
@handle_errors
def status(ctx: click.Context, as_json: bool, health: bool) -> None:
    """Daemon, file counts by state, parked/quarantined files, problems, assets, last success."""
    settings = settings_of(ctx)
    if health:
        from algoseek_sync.service.health import health as health_of

        verdict = health_of(settings)
        click.echo(json.dumps(verdict.as_dict(), default=str) if as_json else verdict.message())
        sys.exit(0 if verdict.healthy else EX_PROBLEMS)
    from algoseek_sync.app import open_app
    from algoseek_sync.commands.views import format_status
    from algoseek_sync.commands.views import status as status_of

    app = open_app(settings, readonly=True)
    try:
        data = status_of(app)
    finally:
        app.close()
    click.echo(json.dumps(data, indent=2, default=str) if as_json else format_status(data))


@main.command()
@click.option("--figi", help="One asset by FIGI (or custom id).")
@click.option("--secid", type=int, help="Every asset of an Algoseek SecId.")
@click.option(
    "--ticker", help="A ticker, resolved through the master's dated ticker history (case-sensitive)."
)
@click.option("--date", "day", help="Every asset's bar on this trade date (YYYY-MM-DD): a cross-section.")
@click.option("--on", "on", help="With --ticker: the date the ticker is resolved on (YYYY-MM-DD).")
@click.option("--start", help="First trade date (YYYY-MM-DD).")
@click.option("--end", help="Last trade date (YYYY-MM-DD).")
@click.option("--dataset", type=click.Choice(DATASET_NAMES), help="Dataset (default: the only one stored).")
@click.option("--adjusted", is_flag=True, help="Backward-adjusted OHLC and volume (datasets with factors).")
@TABULAR
@click.pass_context
@handle_errors
def bars(
    ctx: click.Context,
    figi: str | None,
    secid: int | None,
    ticker: str | None,
    day: str | None,
    on: str | None,
    start: str | None,
    end: str | None,
    dataset: str | None,
    adjusted: bool,
    fmt: str,
) -> None:
    """Daily bars from the store, one row per (trade date, asset)."""
    if sum(x is not None for x in (figi, secid, ticker, day)) != 1:
        raise click.UsageError("give exactly one of --figi, --secid, --ticker, --date")
    if on and not ticker:
        raise click.UsageError("--on goes with --ticker")
    if day and (start or end):
        raise click.UsageError("--date is one day: leave out --start and --end")
    on, start, end, day = (
        _date(on, "--on"),
        _date(start, "--start"),
        _date(end, "--end"),
        _date(day, "--date"),
    )
    from algoseek_sync.app import open_app
    from algoseek_sync.backends.base import BarQuery
    from algoseek_sync.commands.views import format_bars, pick_dataset, resolve_uids

    app = open_app(settings_of(ctx), readonly=True)
    try:
        chosen = pick_dataset(sorted(app.ledger.datasets()) or app.backend.datasets(), dataset)
        if day:
            if adjusted:
                raise click.UsageError(
                    "--adjusted goes with a history (--figi, --secid, --ticker), not --date"
                )
            frame = app.backend.read_day(chosen, day)
        else:
            uids = resolve_uids(app, figi=figi, secid=secid, ticker=ticker, on=on)
            frame = app.backend.read_bars(BarQuery(chosen, uids, start, end, adjusted))
    finally:
        app.close()
    click.echo(format_bars(frame, chosen, fmt))


@main.command()
@click.option("--dataset", type=click.Choice(DATASET_NAMES), help="Only assets with bars in this dataset.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
@handle_errors
def assets(ctx: click.Context, dataset: str | None, fmt: str) -> None:
    """Assets the store holds (FIGIs and custom ids for FIGI-less SecIds)."""
    from algoseek_sync.app import open_app

    app = open_app(settings_of(ctx), readonly=True)
    try:
        frame = app.backend.read_assets()
        if dataset:
            held = app.ledger.secids_of_dataset(dataset)
            frame = frame[frame["secid"].isin(held)]
    finally:
        app.close()
    if fmt == "json":
        click.echo(frame.to_json(orient="records"))
    else:
        click.echo(frame.to_string(index=False) if len(frame) else "no assets")


@main.command()
@click.option("--secid", type=int, help="Findings of one SecId.")
@click.option("--ticker", help="Findings of the SecId that carries this ticker (case-sensitive).")
@click.option("--figi", help="Findings of the SecId of this FIGI (or custom id).")
@click.option("--kind", help="Only this kind (see README: missing_session, stale_price, …).")
@click.option("--severity", type=click.Choice(["error", "warning", "info"]), help="Only this severity.")
@click.option("--since", help="Findings ending on or after this trade date (YYYY-MM-DD).")
@click.option("--dataset", type=click.Choice(DATASET_NAMES), help="Only this dataset.")
@click.option("--resolved", is_flag=True, help="Include findings a later delivery resolved.")
@TABULAR
@click.pass_context
@handle_errors
def quality(
    ctx: click.Context,
    secid: int | None,
    ticker: str | None,
    figi: str | None,
    kind: str | None,
    severity: str | None,
    since: str | None,
    dataset: str | None,
    resolved: bool,
    fmt: str,
) -> None:
    """Data-quality findings of the stored bars: gaps, impossible bars, stale prices, jumps, deliveries."""
    if sum(x is not None for x in (secid, ticker, figi)) > 1:
        raise click.UsageError("give at most one of --secid, --ticker, --figi")
    since = _date(since, "--since")
    from algoseek_sync.app import open_app
    from algoseek_sync.commands.quality_view import format_findings
    from algoseek_sync.commands.views import secids_named
    from algoseek_sync.quality.findings import Filter

    app = open_app(settings_of(ctx), readonly=True)
    try:
        secids = secids_named(app, secid=secid, ticker=ticker, figi=figi)
        chosen = Filter(
            secids=secids,
            kind=kind,
            severity=severity,
            since=int(since.replace("-", "")) if since else None,
            dataset=dataset,
            include_resolved=resolved,
        )
        rows = app.quality.findings.query(chosen)
    finally:
        app.close()
    click.echo(format_findings(rows, fmt))


@main.command()
@click.option(
    "--html",
    "html_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the report to this file (one self-contained HTML page).",
)
@click.option(
    "--secid",
    "secids",
    type=int,
    multiple=True,
    help="Chart this SecId (repeatable; default: the SecId with the most open findings).",
)
@click.option("--ticker", help="Chart the SecId that carries this ticker (case-sensitive).")
@click.option("--dataset", type=click.Choice(DATASET_NAMES), help="Dataset (default: the only one stored).")
@click.pass_context
@handle_errors
def report(
    ctx: click.Context, html_path: Path, secids: tuple[int, ...], ticker: str | None, dataset: str | None
) -> None:
    """An HTML data-quality report: coverage heatmap, open findings, price charts with events and findings."""
    from algoseek_sync.commands.report import write_report

    size, seconds = write_report(
        settings_of(ctx), html_path, secids=list(secids), ticker=ticker, dataset=dataset
    )
    click.echo(f"wrote {html_path} ({size:,} bytes) in {seconds:.1f} s")


@main.command("check-config")
@click.pass_context
@handle_errors
def check_config(ctx: click.Context) -> None:
    """Validate the configuration and check that the drop is readable and the backend answers."""
    settings = settings_of(ctx)
    from algoseek_sync.app import check_drop_dir
    from algoseek_sync.backends import open_backend
    from algoseek_sync.state.database import Database

    check_drop_dir(settings)
    db = Database(settings.db_path)
    try:
        if settings.quality.enabled:
            from algoseek_sync.quality.calendar import load

            load(db, settings.quality.calendar)
        backend = open_backend(settings, db)
        try:
            described = backend.check(quick=True)
        finally:
            backend.close()
    finally:
        db.close()
    click.echo(f"configuration OK ({settings.source})")
    click.echo(f"drop dir:  {settings.drop.dir}")
    click.echo(f"state dir: {settings.state.dir}")
    click.echo(f"backend:   {described}")
    if settings.metrics.listen:
        click.echo(f"metrics:   http://{settings.metrics.listen}/metrics")


@main.command()
@click.option(
    "--secid", "secids", type=int, multiple=True, help="A SecId: its newest stored file(s). Repeatable."
)
@click.option(
    "--file",
    "files",
    multiple=True,
    help="A file: as given (inside the drop) or relative to the drop. Repeatable.",
)
@click.option("--since", help="Every file whose mtime is on or after this UTC date (YYYY-MM-DD).")
@click.option("--all", "everything", is_flag=True, help="Every file the ledger knows.")
@click.option("--wait", is_flag=True, help="With a running daemon: return only once it has processed them.")
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal)."
)
@click.pass_context
@handle_errors
def reprocess(
    ctx: click.Context,
    secids: tuple[int, ...],
    files: tuple[str, ...],
    since: str | None,
    everything: bool,
    wait: bool,
    progress: bool | None,
) -> None:
    """Apply file versions again, even when their bytes were already ingested."""
    if sum((bool(secids), bool(files), since is not None, everything)) != 1:
        raise click.UsageError("give exactly one of --secid, --file, --since, --all")
    from algoseek_sync.commands.reprocess import Selection
    from algoseek_sync.commands.reprocess import reprocess as reprocess_files

    day = dt.date.fromisoformat(_date(since, "--since")) if since else None
    selection = Selection(secids=secids, files=files, since=day, everything=everything)
    sys.exit(reprocess_files(settings_of(ctx), selection, wait=wait, progress=progress))


@main.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--secids", type=int, default=100, show_default=True)
@click.option("--days", type=int, default=20, show_default=True)
@click.option(
    "--schema",
    type=click.Choice(["primary", "primary-adjusted", "standard"]),
    default="primary-adjusted",
    show_default=True,
)
@click.option("--aggregation", type=click.Choice(["secid", "tradedate"]), default="secid", show_default=True)
@click.option("--compression", type=click.Choice(["gz", "none"]), default="gz", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--plant-problems",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Plant one data-quality problem of each kind and write the findings they must cause to this JSON file.",
)
def generate(
    directory: Path,
    secids: int,
    days: int,
    schema: str,
    aggregation: str,
    compression: str,
    seed: int,
    plant_problems: Path | None,
) -> None:
    """Write a realistic synthetic drop (master + bar files) into DIRECTORY."""
    from algoseek_sync.synthetic.generate import DropSpec, generate_drop

    spec = DropSpec(
        secids=secids,
        days=days,
        schema=schema,  # type: ignore[arg-type]
        aggregation=aggregation,  # type: ignore[arg-type]
        compression=compression,  # type: ignore[arg-type]
        seed=seed,
        open_quirks=0.0 if plant_problems else DropSpec.open_quirks,
    )
    manifest = generate_drop(directory, spec)
    click.echo(
        f"wrote {len(manifest.bar_paths)} bar file(s), {manifest.rows} row(s) and a master to {directory}"
    )
    if plant_problems:
        from algoseek_sync.synthetic.plant import plant

        planted = plant(directory, spec, manifest, seed)
        plant_problems.write_text(json.dumps([p.as_dict() for p in planted], indent=1) + "\n")
        click.echo(f"planted {len(planted)} expected finding(s), listed in {plant_problems}")
