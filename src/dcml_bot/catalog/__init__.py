"""The reading-list catalog: parsing, identity and queries."""

from dcml_bot.catalog.identity import entry_ref
from dcml_bot.catalog.models import (
    Catalog,
    Entry,
    Kind,
    Level,
    Placement,
    Problem,
    Section,
    Severity,
    Topic,
)
from dcml_bot.catalog.parser import load_catalog, parse_catalog
from dcml_bot.catalog.query import Query, QueryError, build_query, parse_query, run_query, search
from dcml_bot.catalog.source import CatalogError, decode_catalog, read_catalog_file

__all__ = [
    "Catalog",
    "CatalogError",
    "Entry",
    "Kind",
    "Level",
    "Placement",
    "Problem",
    "Query",
    "QueryError",
    "Section",
    "Severity",
    "Topic",
    "build_query",
    "decode_catalog",
    "entry_ref",
    "load_catalog",
    "parse_catalog",
    "parse_query",
    "read_catalog_file",
    "run_query",
    "search",
]
