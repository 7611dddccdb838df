"""The ``dcml-bot`` command line (Typer + rich)."""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dcml_bot.catalog import Catalog, CatalogError, Entry, QueryError, build_query, run_query
from dcml_bot.catalog.guides import Guides, Loaded, TrackSource
from dcml_bot.config import SettingsError, guide_sources, read_config

if TYPE_CHECKING:
    from rich.table import Table
    from rich.text import Text

    from dcml_bot.app import Service
    from dcml_bot.core.jobs import Unsent
    from dcml_bot.settings import Settings

# Imports are where they are needed: the catalog commands only parse and print, so the database
# (SQLAlchemy), the typed settings (pydantic), the bot's wiring and the chat SDKs are imported
# inside the commands that use them (tests/test_cli_imports.py keeps it that way), and rich's
# console, tables and progress bars inside the commands that print with them.

log = logging.getLogger(__name__)

app = typer.Typer(
    name="dcml-bot",
    help="A lab's Markdown reading list as a reading programme in Slack and Feishu/Lark.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
catalog_app = typer.Typer(help="Check and browse the reading-list catalog.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help=(
            "Config file (default: $DCML_BOT_CONFIG, else config/dcml-bot.toml when present, "
            "else the built-in defaults and guide)."
        ),
        show_default=False,
    ),
]
PathArgument = Annotated[
    str | None,
    typer.Argument(
        help="Catalog file or http(s) URL (default: the configured catalog).", show_default=False
    ),
]

LEVEL_LABELS = {
    "essential": "essential (必读)",
    "optional": "optional (选读)",
    "advanced": "advanced (进阶)",
}


LEVEL_COLUMNS = {"items", "essential", "optional", "advanced"}


# The libraries' loggers: at WARNING unless log_all, since at DEBUG markdown-it traces every rule
# and the SDKs and HTTP clients log each request (whole bodies, for some).
LIBRARY_LOGGERS = (
    "markdown_it",
    "slack_bolt",
    "slack_sdk",
    "Lark",
    "lark_oapi",
    "urllib3",
    "httpx",
    "httpcore",
    "websockets",
    "apscheduler",
    "alembic",
    "sqlalchemy",
    "uvicorn",
    "asyncio",
    "multipart",
    "python_multipart",
)


# A log line is one record: a newline or escape sequence from a request cannot forge another.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
MAX_LOG_MESSAGE = 4000  # characters; SDKs at DEBUG log whole bodies of up to 256 KiB


class OneLine(logging.Filter):
    """Escapes control characters in each message and cuts it at ``MAX_LOG_MESSAGE``."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Always True: the record is rewritten, never dropped."""
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: the handler reports it as usual
            return True
        clean = _CONTROL.sub(lambda found: found[0].encode("unicode_escape").decode(), message)
        if len(clean) > MAX_LOG_MESSAGE:
            clean = f"{clean[:MAX_LOG_MESSAGE]}… ({len(clean) - MAX_LOG_MESSAGE} more characters)"
        if clean != message:
            record.msg, record.args = clean, None
        return True


def configure_logging(level: str, *, everything: bool = False, timestamps: bool = False) -> None:
    """The one logging set-up: the bot's loggers (``dcml_bot.*``) at ``level``, libraries' at
    WARNING (or ``level`` when higher), every logger at ``level`` with ``everything`` (log_all)."""
    threshold = logging.getLevelNamesMapping()[level.upper()]
    libraries = threshold if everything else max(threshold, logging.WARNING)
    logging.basicConfig(
        level=libraries,
        format=("%(asctime)s " if timestamps else "") + "%(levelname)s %(name)s: %(message)s",
        force=True,
    )
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(libraries)
    # uvicorn's start and stop lines ("Uvicorn running on …", "Shutting down") are worth INFO.
    logging.getLogger("uvicorn.error").setLevel(min(libraries, max(threshold, logging.INFO)))
    logging.getLogger("dcml_bot").setLevel(threshold)
    for handler in logging.getLogger().handlers:
        handler.addFilter(OneLine())


class _State:
    """Options shared by every command."""

    config: Path | None = None


def _fail(message: str, code: int = 1) -> typer.Exit:
    from rich.console import Console

    Console(stderr=True, soft_wrap=True, highlight=False).print(
        f"[bold red]error:[/] {message}", markup=True
    )
    return typer.Exit(code)


def _settings() -> Settings:
    from dcml_bot.settings import load_settings

    try:
        return load_settings(_State.config)
    except SettingsError as exc:
        raise _fail(str(exc), 2) from None


def _run_setup(week: str | None) -> tuple[str | None, Settings]:
    """A run's ISO week (a malformed one exits 2) and the settings, logging configured."""
    from dcml_bot.core.plan import parse_week

    if week is not None:
        try:
            week = parse_week(week)
        except ValueError as exc:
            raise _fail(str(exc), 2) from None
    settings = _settings()
    _say_where(settings)
    configure_logging(settings.log_level, everything=settings.log_all)
    return week, settings


def _say_where(settings: Settings) -> None:
    """One line on stderr at start: where this process keeps its data."""
    typer.echo(f"data: {settings.data_location}", err=True)


def _load(path: str | None) -> Loaded:
    """The guides at PATH (or the configured ones, with their tracks): one pass, as serve reads."""
    try:
        sources = guide_sources(read_config(_State.config))
    except SettingsError as exc:
        if path is None:
            raise _fail(str(exc), 2) from None
        sources = None
    if path is not None:
        guides = Guides(
            path,
            link_base=sources.link_base if sources else None,
            limits=sources.limits if sources else None,
        )
    else:
        assert sources is not None
        tracks = {
            name: TrackSource(name=name, catalog=catalog, title=title)
            for name, (catalog, title) in sources.tracks.items()
        }
        guides = Guides(
            sources.location, link_base=sources.link_base, tracks=tracks, limits=sources.limits
        )
    loaded = guides.load()
    if loaded.catalog is None and loaded.draft is None:
        raise _fail("\n".join(loaded.errors) or f"{guides.location}: nothing to read")
    return loaded


@app.callback()
def _main(config: ConfigOption = None) -> None:
    """A lab's Markdown reading list as a reading programme in Slack and Feishu/Lark."""
    _State.config = config
    configure_logging("WARNING")


def _counts_table(title: str, counts: Counter[str], order: list[str] | None = None) -> Table:
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    keys = order if order is not None else [k for k, _ in counts.most_common()]
    for key in keys:
        if counts.get(key):
            table.add_row(key, str(counts[key]))
    return table


@catalog_app.command("check")
def catalog_check(path: PathArgument = None) -> None:
    """Summarise a guide (or an index and every guide it links: one summary per track) and list
    every problem as PATH:LINE: message; exit 1 on errors."""
    from rich.console import Console
    from rich.text import Text

    loaded = _load(path)
    catalog = loaded.catalog or loaded.draft
    assert catalog is not None
    out = Console(soft_wrap=True, highlight=False)
    duplicates = catalog.listings - len(catalog.entries)
    out.print(f"[bold]{catalog.title or catalog.source}[/] ({catalog.source})")
    out.print(
        f"{len(catalog.entries)} items from {catalog.listings} listings "
        f"({duplicates} duplicate listing{'s' if duplicates != 1 else ''} merged); "
        f"{len(catalog.sections)} sections, {len(catalog.topics)} topics"
    )
    legend = ", ".join(f"{icon} {level.value}" for icon, level in catalog.legend.items())
    out.print(f"legend: {legend} ({'from the file' if catalog.legend_from_file else 'default'})")
    levels = Counter(e.level.value if e.level else "unclassified" for e in catalog.entries)
    out.print(
        _counts_table("by level", levels, ["essential", "optional", "advanced", "unclassified"])
    )
    sections = Counter(e.section or "(no section)" for e in catalog.entries)
    out.print(
        _counts_table(
            "by section",
            sections,
            list(dict.fromkeys(e.section or "(no section)" for e in catalog.entries)),
        )
    )
    kinds = Counter(k.value for e in catalog.entries for k in e.kinds)
    out.print(_counts_table("by kind", kinds))
    if len(catalog.tracks) > 1:
        out.print(_tracks_table(catalog))
    warned = [p for p in catalog.problems if p.severity == "warning"]
    for problem in warned:
        out.print(Text(str(problem), style="yellow"))
    for error in loaded.errors:
        out.print(Text(error, style="red"))
    errors, warnings = len(loaded.errors), len(warned)
    if errors and len(catalog.tracks) > 1:
        out.print(
            f"[bold red]{errors} error(s)[/], {warnings} warning(s): the tracks above serve; "
            "the rest is refused until fixed"
        )
        raise typer.Exit(1)
    if errors:
        out.print(f"[bold red]{errors} error(s)[/], {warnings} warning(s): not usable until fixed")
        raise typer.Exit(1)
    out.print(f"[bold green]usable[/]: 0 errors, {warnings} warning(s)")


def _tracks_table(catalog: Catalog) -> Table:
    from rich.table import Table

    table = Table(title="by track", title_justify="left", box=None, pad_edge=False)
    for column in ("track", "title", "items", "essential", "optional", "advanced"):
        table.add_column(
            column, justify="right" if column in LEVEL_COLUMNS else "left", no_wrap=True
        )
    for track in catalog.tracks:
        scope = (track.name,)
        entries = [e for e in catalog.entries if track.name in e.tracks]
        levels = Counter(level.value for e in entries if (level := e.level_in(scope)))
        table.add_row(
            track.name,
            track.title,
            str(len(entries)),
            *(str(levels[level]) for level in ("essential", "optional", "advanced")),
        )
    return table


def _entry_line(entry: Entry) -> Text:
    from rich.text import Text

    line = Text()
    line.append(f"{entry.level_icon or '·'} ")
    if entry.icons:
        line.append("+".join(entry.icons) + " ")
    if entry.acronym:
        line.append(f"({entry.acronym}) ", style="bold")
    line.append(entry.title, style="bold")
    if entry.url:
        line.append(f"  {entry.url}", style="blue")
    line.append(f"  [{entry.id}]", style="dim")
    return line


@catalog_app.command("show")
def catalog_show(
    path: PathArgument = None,
    level: Annotated[
        list[str] | None,
        typer.Option(
            "--level",
            "-l",
            help="essential, optional or advanced (also 必读/选读/进阶 or the icon).",
        ),
    ] = None,
    topic: Annotated[
        list[str] | None,
        typer.Option("--topic", "-t", help="Topic or section, forgiving: rag, video, math …"),
    ] = None,
    kind: Annotated[
        list[str] | None,
        typer.Option("--kind", "-k", help="paper, code, course, book, tool or tutorial."),
    ] = None,
    search: Annotated[
        str | None, typer.Option("--search", "-s", help="Words to find in titles and notes.")
    ] = None,
    track: Annotated[
        list[str] | None,
        typer.Option("--track", help="Only these tracks (an index's directions), by name."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list of entries.")] = False,
) -> None:
    """Print the catalog grouped by section and topic, optionally filtered."""
    from rich.console import Console
    from rich.text import Text

    loaded = _load(path)
    if loaded.catalog is None:
        raise _fail("\n".join(loaded.errors))
    catalog = loaded.catalog
    try:
        query = build_query(
            catalog,
            levels=level or (),
            topics=topic or (),
            kinds=kind or (),
            search=search,
            tracks=track or (),
        )
    except QueryError as exc:
        raise _fail(str(exc), 2) from None
    entries = run_query(catalog, query)
    if as_json:
        typer.echo(json.dumps([e.as_record() for e in entries], ensure_ascii=False, indent=2))
        return
    out = Console(soft_wrap=True, highlight=False)
    if not entries:
        out.print(f"nothing matches {query.describe()}")
        return
    header: tuple[str | None, str | None] | None = None
    for entry in entries:
        group = (entry.section, entry.placements[0].topic)
        if group != header:
            header = group
            out.print()
            out.print(
                Text(" › ".join(g for g in group if g) or "(no section)", style="bold magenta")
            )
        out.print(_entry_line(entry))
        for note in entry.notes:
            out.print(Text("    " + note.replace("\n", "\n    "), style="italic dim"))
    out.print()
    out.print(f"{len(entries)} of {len(catalog.entries)} items · {query.describe()}")


def _service(settings: Settings, *, schedule: bool) -> Service:
    """Everything ``serve`` runs, every configured platform included; one-line start-up errors."""
    from dcml_bot.app import build_service
    from dcml_bot.store.database import DatabaseFileError

    try:
        return build_service(settings, schedule=schedule)
    except (CatalogError, DatabaseFileError) as exc:
        raise _fail(str(exc)) from None
    except Exception as exc:  # the database or a platform is unreachable: one line, no traceback
        log.debug("start-up failed", exc_info=True)
        raise _fail(f"cannot start: {exc.__class__.__name__}: {exc}") from None


@app.command("remind")
def remind(
    week: Annotated[
        str | None,
        typer.Option(
            "--week",
            help="ISO week to deliver, e.g. 2026-W48 (default: each member's current week).",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show who would get which paper; send nothing.")
    ] = False,
    wait: Annotated[
        float | None,
        typer.Option(
            "--wait",
            min=0,
            help="Seconds to wait for papers another running process is sending (default 30).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the weekly delivery now, with a progress bar and a summary; exit 1 unless every
    member's paper went out, or cannot go out (unreachable, nothing left to send)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.table import Table

    week, settings = _run_setup(week)
    # Every configured platform, so Slack and Feishu members get their paper too.
    service = _service(settings, schedule=False)
    bot = service.bot
    out = Console(soft_wrap=True, highlight=False)
    members = bot.store.list_members(enrolled=True)
    with Progress(
        TextColumn("[bold]delivering"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=out,
    ) as bar:
        task = bar.add_task("members", total=len(members))
        report, unsent = service.jobs.remind(
            week=week, dry_run=dry_run, on_member=lambda m, o: bar.advance(task), patience=wait
        )
    if dry_run:
        table = Table(
            "member", "week", "paper", title="dry run: nothing sent", title_justify="left"
        )
        for member, entry in report.planned:
            table.add_row(
                member.display_name or member.user_id,
                week or bot.delivery.week_for(member, bot.clock()),
                entry.title,
            )
        out.print(table)
    out.print(f"{len(members)} enrolled member(s); {report.summary('nothing to do')}")
    for left in unsent:
        out.print(f"{left.member.platform}:{left.member.user_id} {left.week}: {_why_unsent(left)}")
    waiting = sum(not left.final for left in unsent)
    if waiting:
        out.print(
            f"{waiting} member(s) still without this week's paper: the scheduler of a running "
            "`serve` (or another `remind`) sends them later, never twice."
        )
    service.stop()
    if waiting:
        raise typer.Exit(1)


@app.command("digest")
def digest(
    week: Annotated[
        str | None,
        typer.Option("--week", help="ISO week to post, e.g. 2026-W49 (default: this week)."),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Print the digest; post nothing and claim nothing."),
    ] = False,
) -> None:
    """Post the lab channel's weekly digest now and open its thread; at most once a week, however
    often it runs, even beside a running `serve`. Exit 0 when it went out, had gone out before, or
    the week is empty (nothing to post); 1 when it is off, failed or another run is posting it."""
    from rich.console import Console
    from rich.markup import escape

    from dcml_bot.core.digest import ALREADY, EMPTY, OFF, POSTED
    from dcml_bot.core.reply import render_plain

    week, settings = _run_setup(week)
    off = escape("the digest is off: set [digest] channel (or DCML_BOT_DIGEST__CHANNEL)")
    if not settings.digest.channel:
        raise _fail(off)
    service = _service(settings, schedule=False)
    out = Console(soft_wrap=True, highlight=False, markup=False)
    try:
        # An admin's run also retries a post that failed for good (the bot invited since).
        run = service.jobs.digest(week=week, dry_run=dry_run, reopen=not dry_run)
        row = service.bot.digest.status(run.week) if run.outcome != OFF else None
    finally:
        service.stop()
    if run.outcome == OFF:
        raise _fail(off + escape(f" on a platform that is configured ({settings.digest.channel})"))
    where = f"{service.bot.digest.place.platform}:{service.bot.digest.place.channel}"
    if dry_run:
        if run.reply is not None:
            out.print(render_plain(run.reply).rstrip())
        out.print(f"dry run: nothing posted to {where} for {run.week} ({run.outcome})")
        return
    said = {
        POSTED: f"digest for {run.week} posted in {where}",
        ALREADY: f"digest for {run.week} was already posted in {where}; not posted again",
        EMPTY: f"nothing to post in {where} for {run.week}: an empty week posts nothing",
    }.get(run.outcome)
    if said is None:
        error = f" ({row.last_error})" if row is not None and row.last_error else ""
        raise _fail(escape(f"digest for {run.week} in {where}: {run.outcome}{error}"))
    out.print(said + (f"; thread: {run.thread}" if run.thread else ""))
    if run.thread not in (None, POSTED, ALREADY):
        raise typer.Exit(1)


def _why_unsent(left: Unsent) -> str:
    """Why a member's paper has not gone out, from its outbox row."""
    from dcml_bot.core.once import ELSEWHERE, GONE, RUNNING, holder_state

    row = left.row
    if row is None:
        return f"not sent ({left.outcome})"
    if row.status == "dead":
        return f"cannot be reached ({row.last_error}); not retried"
    if row.status == "failed":
        when = f"{row.retry_at:%H:%M} UTC" if row.retry_at else "the next run"
        return f"failed ({row.last_error}); tried again from {when}"
    holder = row.claimed_by or "?"
    until = f"{row.lease_until:%H:%M:%S} UTC" if row.lease_until else "its lease ends"
    return {
        RUNNING: f"held by {holder}, still running on this host, until {until}",
        ELSEWHERE: f"held by {holder} on another host until {until}",
        GONE: f"held by {holder}, which has ended: the next run takes it over",
    }.get(holder_state(holder), f"held by {holder} until {until}")


@app.command("serve")
def serve(
    host: Annotated[
        str | None, typer.Option("--host", help="Address to bind (default: from config).")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option("--port", min=0, max=65535, help="Port to listen on (default: from config)."),
    ] = None,
) -> None:
    """Run the bot: HTTP endpoints, Slack/Feishu connections and the weekly scheduler."""
    from dcml_bot.server import serve as run_server

    settings = _settings()
    if host is not None:  # the lab's guard checks the address really bound
        settings = settings.model_copy(update={"host": host})
    configure_logging(settings.log_level, everything=settings.log_all, timestamps=True)
    _say_where(settings)
    service = _service(settings, schedule=True)
    bind_host = settings.host
    bind_port = settings.port if port is None else port
    if settings.local_enabled and bind_host not in {"127.0.0.1", "localhost", "::1"}:
        log.warning(
            "the local lab at / is served on %s behind DCML_BOT_LOCAL__TOKEN: whoever has the "
            "token can act as any member; keep it on 127.0.0.1 unless this network is yours alone",
            bind_host,
        )
    names = ", ".join(sorted(service.bot.messengers)) or "none"
    typer.echo(f"dcml-bot starting on http://{bind_host}:{bind_port}/ (platforms: {names})")
    run_server(service, bind_host, bind_port)


@app.command("console")
def console(
    user: Annotated[str, typer.Option("--as", help="Start as this local user.")] = "me",
) -> None:
    """Chat with the bot in the terminal as a local user (same database, clock and code paths)."""
    from dcml_bot.app import build_console
    from dcml_bot.store import open_store

    settings = _settings()
    _say_where(settings)
    configure_logging(settings.log_level, everything=settings.log_all)
    from dcml_bot.store.database import DatabaseFileError

    try:
        store = open_store(settings.database_url)
    except DatabaseFileError as exc:
        raise _fail(str(exc)) from None
    except Exception as exc:  # the database URL or server is wrong: one line, no traceback
        raise _fail(
            f"database {settings.database_url.split('@')[-1]}: {exc.__class__.__name__}: {exc}"
        ) from None
    try:
        session = build_console(settings, user, store=store)
    except CatalogError as exc:
        raise _fail(str(exc)) from None
    try:
        session.run()
    finally:
        session.bot.close()


@app.command("init")
def init(
    directory: Annotated[
        Path,
        typer.Argument(
            help="Where to write dcml-bot.toml and catalog/dcml.md (default: here).",
            metavar="DIR",
            show_default=False,
        ),
    ] = Path("."),
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
) -> None:
    """Write a commented config and a copy of the guide for a lab to edit."""
    import shlex

    from dcml_bot.config import PACKAGED_CONFIG, PACKAGED_GUIDE, packaged_file

    config = directory / PACKAGED_CONFIG
    guide = directory / "catalog" / PACKAGED_GUIDE  # the config says catalog = "catalog/dcml.md"
    files = {
        config: packaged_file(PACKAGED_CONFIG).read_bytes(),
        guide: packaged_file(PACKAGED_GUIDE).read_bytes(),
    }
    existing = [str(path) for path in files if path.exists() or path.is_symlink()]
    if existing and not force:
        exist = "exists" if len(existing) == 1 else "exist"
        raise _fail(
            f"{' and '.join(existing)} already {exist}; nothing written (--force overwrites)"
        )
    try:
        for path, content in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
    except OSError as exc:
        raise _fail(f"{exc.filename or directory}: {exc.strerror or exc}") from None
    shown = shlex.quote(str(config.absolute()))
    typer.echo(f"wrote {config} (settings, every key commented) and {guide} (the reading list)")
    typer.echo("next: edit them, check the guide, then start the bot:")
    typer.echo(f"  dcml-bot --config {shown} catalog check")
    typer.echo(f"  dcml-bot --config {shown} serve")
    typer.echo(f"(or export DCML_BOT_CONFIG={shown} and leave out --config)")


def main() -> None:
    """Console-script entry point."""
    app()
