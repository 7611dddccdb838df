"""The ``dcml-bot`` command line (Typer + rich)."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from dcml_bot.catalog import Catalog, CatalogError, Entry, QueryError, build_query, run_query
from dcml_bot.catalog.loader import load_catalog_from
from dcml_bot.settings import Settings, SettingsError, load_settings

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
        help="Config file (default: $DCML_BOT_CONFIG, else config/dcml-bot.toml when present).",
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


class _State:
    """Options shared by every command."""

    config: Path | None = None


def _fail(message: str, code: int = 1) -> typer.Exit:
    Console(stderr=True, soft_wrap=True, highlight=False).print(
        f"[bold red]error:[/] {message}", markup=True
    )
    return typer.Exit(code)


def _settings() -> Settings:
    try:
        return load_settings(_State.config)
    except SettingsError as exc:
        raise _fail(str(exc), 2) from None


def _load(path: str | None) -> Catalog:
    source = path if path is not None else _settings().catalog
    try:
        return load_catalog_from(source)
    except CatalogError as exc:
        raise _fail(str(exc)) from None


@app.callback()
def _main(config: ConfigOption = None) -> None:
    """A lab's Markdown reading list as a reading programme in Slack and Feishu/Lark."""
    _State.config = config
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def _counts_table(title: str, counts: Counter[str], order: list[str] | None = None) -> Table:
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
    """Summarise a catalog and list every problem as PATH:LINE: message; exit 1 on errors."""
    catalog = _load(path)
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
    for problem in catalog.problems:
        out.print(Text(str(problem), style="red" if problem.severity == "error" else "yellow"))
    errors, warnings = len(catalog.errors), len(catalog.problems) - len(catalog.errors)
    if errors:
        out.print(f"[bold red]{errors} error(s)[/], {warnings} warning(s): not usable until fixed")
        raise typer.Exit(1)
    out.print(f"[bold green]usable[/]: 0 errors, {warnings} warning(s)")


def _entry_line(entry: Entry) -> Text:
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
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list of entries.")] = False,
) -> None:
    """Print the catalog grouped by section and topic, optionally filtered."""
    catalog = _load(path)
    try:
        query = build_query(
            catalog, levels=level or (), topics=topic or (), kinds=kind or (), search=search
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


def main() -> None:
    """Console-script entry point."""
    app()
