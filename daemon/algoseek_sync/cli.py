"""The ``algoseek-sync`` command line: parse arguments, call one function, format output."""

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
    AlgoseekSyncError,
    BackendUnavailableError,
    ConfigError,
    UserInputError,
)
from algoseek_sync.logging import configure_logging
from algoseek_sync.reprocess import reprocess_command

EX_USAGE_INPUT = 2
EX_UNAVAILABLE = 69


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
            _fail(str(exc), EX_USAGE_INPUT)
        except BackendUnavailableError as exc:
            _fail(f"backend unavailable: {exc}", EX_UNAVAILABLE)
        except AlgoseekSyncError as exc:
            _fail(str(exc), 1)
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
        from algoseek_sync.app import open_app, run_once
        from algoseek_sync.lock import WorkerLock

        lock = WorkerLock(settings.state.dir)
        if not lock.acquire():
            raise UserInputError(
                f"a daemon is already running on {settings.state.dir}; use `algoseek-sync reprocess` instead"
            )
        app = open_app(settings)
        try:
            stats = run_once(app)
        finally:
            app.close()
            lock.release()
        click.echo(f"processed {stats.files} file version(s), wrote {stats.rows_written} row(s)", err=True)
        if stats.deferred:
            sys.exit(EX_UNAVAILABLE)
        return
    from algoseek_sync.service import serve

    sys.exit(serve(settings))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--health", is_flag=True, help="Exit 0 if a daemon runs and its heartbeat is under 60 s old.")
@click.pass_context
@handle_errors
def status(ctx: click.Context, as_json: bool, health: bool) -> None:
    """File counts by state, parked and quarantined files with reasons, assets, last success."""
    if health:
        from algoseek_sync.health import health as health_of

        healthy, message = health_of(settings_of(ctx))
        click.echo(message)
        sys.exit(0 if healthy else 1)
    from algoseek_sync.app import open_app
    from algoseek_sync.report import format_status
    from algoseek_sync.report import status as status_of

    app = open_app(settings_of(ctx), readonly=True)
    try:
        data = status_of(app)
    finally:
        app.close()
    click.echo(json.dumps(data, indent=2, default=str) if as_json else format_status(data))


def _date(value: str | None, param: str) -> str | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)", param_hint=param) from None


@main.command()
@click.option("--figi", help="One asset by FIGI (or custom id).")
@click.option("--secid", type=int, help="Every asset of an Algoseek SecId.")
@click.option(
    "--ticker", help="A ticker, resolved through the master's dated ticker history (case-sensitive)."
)
@click.option("--on", "on", help="With --ticker: the date the ticker is resolved on (YYYY-MM-DD).")
@click.option("--start", help="First trade date (YYYY-MM-DD).")
@click.option("--end", help="Last trade date (YYYY-MM-DD).")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True
)
@click.pass_context
@handle_errors
def bars(
    ctx: click.Context,
    figi: str | None,
    secid: int | None,
    ticker: str | None,
    on: str | None,
    start: str | None,
    end: str | None,
    fmt: str,
) -> None:
    """Daily bars from the store, one row per (trade date, asset)."""
    from algoseek_sync.app import open_app
    from algoseek_sync.report import format_bars, resolve_uids

    if sum(x is not None for x in (figi, secid, ticker)) != 1:
        raise click.UsageError("give exactly one of --figi, --secid, --ticker")
    if on and not ticker:
        raise click.UsageError("--on goes with --ticker")
    on, start, end = _date(on, "--on"), _date(start, "--start"), _date(end, "--end")
    app = open_app(settings_of(ctx), readonly=True)
    try:
        uids = resolve_uids(app, figi=figi, secid=secid, ticker=ticker, on=on)
        frame = app.backend.read_bars(uids, start, f"{end}T23:59:59Z" if end else None)
    finally:
        app.close()
    click.echo(format_bars(frame, fmt))


@main.command()
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
@handle_errors
def assets(ctx: click.Context, fmt: str) -> None:
    """Assets the store holds (FIGIs and custom ids for FIGI-less SecIds)."""
    from algoseek_sync.app import open_app

    app = open_app(settings_of(ctx), readonly=True)
    try:
        frame = app.backend.read_assets()
    finally:
        app.close()
    if fmt == "json":
        click.echo(frame.to_json(orient="records"))
    else:
        click.echo(frame.to_string(index=False) if len(frame) else "no assets")


@main.command("check-config")
@click.pass_context
@handle_errors
def check_config(ctx: click.Context) -> None:
    """Validate the configuration and check that the backend answers."""
    settings = settings_of(ctx)
    from algoseek_sync.app import open_app

    app = open_app(settings)
    try:
        described = app.backend.check()
    finally:
        app.close()
    click.echo(f"configuration OK ({settings.source})")
    click.echo(f"drop dir:  {settings.drop.dir}")
    click.echo(f"state dir: {settings.state.dir}")
    click.echo(f"backend:   {described}")


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
def generate(
    directory: Path, secids: int, days: int, schema: str, aggregation: str, compression: str, seed: int
) -> None:
    """Write a realistic synthetic drop (master + bar files) into DIRECTORY."""
    from algoseek_sync.generate import DropSpec, generate_drop

    spec = DropSpec(
        secids=secids,
        days=days,
        schema=schema,
        aggregation=aggregation,  # type: ignore[arg-type]
        compression=compression,
        seed=seed,
    )  # type: ignore[arg-type]
    manifest = generate_drop(directory, spec)
    click.echo(
        f"wrote {len(manifest.bar_paths)} bar file(s), {manifest.rows} row(s) and a master to {directory}"
    )


main.add_command(reprocess_command)
