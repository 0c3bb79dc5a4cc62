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
from algoseek_sync.quality.kinds import SEVERITY as FINDING_KINDS

DATASET_NAMES = ["primary", "primary-adjusted", "standard-adjusted"]
TABULAR = click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True
)


class DatasetChoice(click.Choice):
    """A dataset name; ``standard`` (its old name in ``generate --schema``) reads as ``standard-adjusted``."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return super().convert("standard-adjusted" if value == "standard" else value, param, ctx)


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


CONFIG_HELP = f"TOML configuration file (or ${CONFIG_ENV})."


def _config_after_command(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """``--config`` given after the subcommand wins over one given before it (or the environment)."""
    if value is not None:
        ctx.find_root().ensure_object(dict)["config"] = value


class Commands(click.Group):
    """The top-level group: ``--config`` on every subcommand too, whole first sentences in ``--help``."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        if not any("--config" in p.opts for p in cmd.params if isinstance(p, click.Option)):
            cmd.params.append(
                click.Option(
                    ["--config"],
                    type=click.Path(),
                    expose_value=False,
                    callback=_config_after_command,
                    help=CONFIG_HELP,
                )
            )
        super().add_command(cmd, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Each command's first sentence whole (click cuts it to the terminal width with "...")."""
        commands = [(name, self.get_command(ctx, name)) for name in self.list_commands(ctx)]
        rows = [
            (name, cmd.get_short_help_str(limit=1000)) for name, cmd in commands if cmd and not cmd.hidden
        ]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config", type=click.Path(), envvar=CONFIG_ENV, help=CONFIG_HELP)
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
    from algoseek_sync.commands.output import json_document
    from algoseek_sync.commands.views import format_status
    from algoseek_sync.commands.views import status as status_of

    app = open_app(settings, readonly=True)
    try:
        data = status_of(app)
    finally:
        app.close()
    click.echo(json_document(data) if as_json else format_status(data))


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
    from algoseek_sync.commands.views import format_bars
    from algoseek_sync.read.store import Store

    if day and adjusted:
        raise click.UsageError("--adjusted goes with a history (--figi, --secid, --ticker), not --date")
    with Store.for_settings(settings_of(ctx)) as store:
        if day:
            frame = store.cross_section(day, dataset=dataset)
        else:
            frame = store.bars(
                ticker,
                figi=figi,
                secid=secid,
                dataset=dataset,
                start=start,
                end=end,
                on=on,
                adjusted=adjusted,
            )
    _say_why_empty(frame)
    if frame.attrs["dataset"] is not None:  # None: no dataset holds anything yet (the note says so)
        click.echo(format_bars(frame, frame.attrs["dataset"], fmt))


def _say_why_empty(frame: Any) -> None:
    """An empty answer that is not an error still says why, on stderr (stdout stays parseable)."""
    note = frame.attrs.get("note")
    if note:
        click.echo(f"algoseek-sync: {note}", err=True)


@main.command()
@click.option("--dataset", type=click.Choice(DATASET_NAMES), help="Only assets with bars in this dataset.")
@click.option("--current", is_flag=True, help="Only links the current master lists (active).")
@TABULAR
@click.pass_context
@handle_errors
def assets(ctx: click.Context, dataset: str | None, current: bool, fmt: str) -> None:
    """Every identifier a master linked to a SecId (FIGIs, custom ids), marked active or not."""
    from algoseek_sync.commands.output import format_assets
    from algoseek_sync.read.store import Store

    with Store.for_settings(settings_of(ctx)) as store:
        frame = store.assets(dataset=dataset, current=current)
    _say_why_empty(frame)
    click.echo(format_assets(frame, fmt))


@main.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--dataset", type=click.Choice(DATASET_NAMES), help="Only this dataset (default: all).")
@click.option("--adjusted", is_flag=True, help="Backward-adjusted OHLC and volume (DIRECTORY/bars-adjusted).")
@click.pass_context
@handle_errors
def export(ctx: click.Context, directory: Path, dataset: str | None, adjusted: bool) -> None:
    """Export the embedded store as Parquet (DIRECTORY/bars/dataset=…/year=…), rewriting only what changed."""
    from algoseek_sync.read.export import export as export_store

    settings = settings_of(ctx)
    if settings.backend.kind != "local":
        kind = settings.backend.kind
        raise UserInputError(f"export reads the embedded store (backend.kind local), not {kind}")
    click.echo(export_store(settings.db_path, directory, dataset=dataset, adjusted=adjusted).line())


@main.command()
@click.option("--secid", type=int, help="Findings of one SecId.")
@click.option("--ticker", help="Findings of the SecId that carries this ticker (case-sensitive).")
@click.option("--figi", help="Findings of the SecId of this FIGI (or custom id).")
@click.option("--kind", type=click.Choice(list(FINDING_KINDS)), help="Only this kind (see README).")
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
    from algoseek_sync.quality.findings import Filter
    from algoseek_sync.read.resolve import target

    app = open_app(settings_of(ctx), readonly=True)
    try:
        named = secid is not None or ticker is not None or figi is not None
        secids = target(app.securities, secid=secid, ticker=ticker, figi=figi).secids if named else []
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
    if not rows and fmt != "table":  # the table says "no findings" itself; CSV and JSON stay parseable
        scope = "open " if not resolved else ""
        narrowed = " matching these filters" if named or kind or severity or since or dataset else ""
        click.echo(f"algoseek-sync: no {scope}findings{narrowed}", err=True)
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
            needed = backend.prerequisites()
            for name, met, detail in needed:
                click.echo(f"{'ok' if met else 'MISSING':<8}{name}: {detail}")
            missing = [name for name, met, _ in needed if not met]
            if missing:
                raise ConfigError(f"configuration error: backend prerequisites not met: {', '.join(missing)}")
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
@click.pass_context
@handle_errors
def migrate(ctx: click.Context) -> None:
    """Create or upgrade the platform tables (Main Sequence SDK 9.x: the migrations shipped in the package)."""
    settings = settings_of(ctx)
    from algoseek_sync.backends import open_backend
    from algoseek_sync.state.database import Database

    if settings.backend.kind != "mainsequence":
        raise ConfigError('configuration error: `migrate` is for backend.kind = "mainsequence" (SDK 9.x)')
    settings.state.dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.db_path)
    try:
        backend = open_backend(settings, db)
        try:
            if not hasattr(backend, "migrate"):
                raise ConfigError(
                    "configuration error: the installed Main Sequence SDK (3.x) creates its tables on first "
                    "write; `migrate` needs SDK 9.x"
                )
            click.echo(backend.migrate())
        finally:
            backend.close()
    finally:
        db.close()


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
    type=DatasetChoice(DATASET_NAMES),
    default="primary-adjusted",
    show_default=True,
    help="The dataset whose files to write ('standard' is accepted for standard-adjusted).",
)
@click.option("--aggregation", type=click.Choice(["secid", "tradedate"]), default="secid", show_default=True)
@click.option("--compression", type=click.Choice(["gz", "none"]), default="gz", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--plant-problems",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Plant one data-quality problem of each kind the drop can show (the others are named, with why) and"
    " write the findings they must cause to this JSON file.",
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
        from algoseek_sync.synthetic.plant import not_planted, plant

        planted = plant(directory, spec, manifest, seed)
        plant_problems.write_text(json.dumps([p.as_dict() for p in planted], indent=1) + "\n")
        kinds = len({p.kind for p in planted})
        click.echo(
            f"planted {len(planted)} expected finding(s) of {kinds} kind(s), listed in {plant_problems}"
        )
        for kind, why in not_planted(spec, planted).items():
            click.echo(f"not planted: {kind}: {why}")
