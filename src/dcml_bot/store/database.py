"""Engines for SQLite and PostgreSQL, and Alembic migrations applied from code."""

from __future__ import annotations

import logging
import os
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.engine.url import URL
from sqlalchemy.exc import DatabaseError, OperationalError
from sqlalchemy.pool import ConnectionPoolEntry

if TYPE_CHECKING:
    from alembic.config import Config

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# The newest migration; a test checks it against Alembic. A database already there is opened
# without importing Alembic at all (a tenth of a second of start-up).
HEAD_REVISION = "0008"

# Execution option marking transactions that will write; SQLite then starts them with
# BEGIN IMMEDIATE so the write lock is taken before any compare-and-set read.
WRITE_OPTION = "dcml_bot_write"

# Execution option for a single read statement: SQLite needs no BEGIN for it (a statement is
# atomic on its own), which saves a round of the driver on the hottest path (member lookup).
SINGLE_READ_OPTION = "dcml_bot_single_read"

SQLITE_BUSY_TIMEOUT_MS = 30_000

# Arbitrary constant key for pg_advisory_xact_lock ("dcmlmigr" in ASCII).
_MIGRATION_LOCK_ID = 0x64636D6C6D696772

_TRUE = {"1", "true", "yes", "on"}

# The first 16 bytes of every SQLite database file.
SQLITE_HEADER = b"SQLite format 3\x00"
_RESTORE = (
    "restore it from a backup (README, Operations: Backup), or move it away to start with "
    "an empty database"
)


class DatabaseFileError(Exception):
    """An existing SQLite file that is not a usable database; it is left as it is."""


def make_engine(url: str) -> Engine:
    """Create an engine for a SQLite or PostgreSQL URL, configured for safe concurrent use."""
    sa_url = make_url(url)
    backend = sa_url.get_backend_name()
    if backend == "sqlite":
        path = sqlite_path(sa_url)
        if path is not None:
            _ensure_sqlite_directory(path)
            _prepare_sqlite_file(path)
        engine = create_engine(sa_url)
        _configure_sqlite(engine)
        return engine
    if backend == "postgresql":
        if sa_url.drivername == "postgresql":
            # Bare postgresql:// means psycopg2 to SQLAlchemy; we ship psycopg 3.
            sa_url = sa_url.set(drivername="postgresql+psycopg")
        return create_engine(sa_url, pool_pre_ping=True)
    raise ValueError(
        f"unsupported database {sa_url.render_as_string(hide_password=True)!r}: "
        "use sqlite:///path or postgresql+psycopg://..."
    )


def single_reader(engine: Engine) -> Engine:
    """A view of ``engine`` for one-statement reads (no explicit transaction on SQLite)."""
    return engine.execution_options(**{SINGLE_READ_OPTION: True})


def writer(engine: Engine) -> Engine:
    """Return a view of ``engine`` whose transactions take the write lock up front."""
    return engine.execution_options(**{WRITE_OPTION: True})


def sqlite_path(url: URL) -> Path | None:
    """The file of a SQLite URL; None for an in-memory or URI database."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    if str(url.query.get("uri", "")).lower() in _TRUE:
        return None
    return Path(database)


def _ensure_sqlite_directory(path: Path) -> None:
    directory = path.parent
    if not directory.exists():
        logger.info("creating directory %s for the SQLite database", directory)
        directory.mkdir(parents=True, exist_ok=True)


def _prepare_sqlite_file(path: Path) -> None:
    """Create a new database file whole, or refuse an existing one that is not a database.

    SQLite takes an empty file for a new database: an emptied or truncated file would be given
    a fresh schema (every member gone) without a word. Nothing is written to a refused file.
    """
    try:
        with path.open("rb") as file:
            header = file.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        _create_sqlite(path)
        return
    except OSError as exc:
        raise DatabaseFileError(f"{path}: cannot read the database file: {exc.strerror}") from None
    if not header:
        raise DatabaseFileError(
            f"{path}: the database file is empty (0 bytes); not starting a new database over "
            f"it: {_RESTORE}"
        )
    if header != SQLITE_HEADER:
        raise DatabaseFileError(
            f"{path}: not an SQLite database (its first bytes are not 'SQLite format 3'); "
            f"not using it: {_RESTORE}"
        )


def _create_sqlite(path: Path) -> None:
    """A new database, its header written before the file appears under its name: a process
    starting at the same moment never meets it empty (and refuses it)."""
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".new", dir=path.parent)
    os.close(handle)
    draft = Path(name)
    connection = sqlite3.connect(draft)
    try:
        _use_wal(connection.cursor())  # writes the header: the file is a database from now on
    finally:
        connection.close()
    try:
        os.link(draft, path)
    except FileExistsError:
        pass  # another process created it first: theirs is used
    except OSError:  # a file system without hard links
        if not path.exists():
            draft.replace(path)
    finally:
        draft.unlink(missing_ok=True)


def verify_sqlite(engine: Engine) -> None:
    """Refuse a SQLite database whose pages are damaged (PRAGMA quick_check), before use."""
    path = sqlite_path(engine.url) if engine.dialect.name == "sqlite" else None
    if path is None:
        return
    try:
        with engine.connect() as connection:
            found = [str(row[0]) for row in connection.exec_driver_sql("PRAGMA quick_check")]
    except OperationalError:
        raise  # cannot open or lock it: not a sign of damage
    except DatabaseError as exc:  # "file is not a database", "disk image is malformed"
        found = [str(exc.orig).strip() or exc.__class__.__name__]
    if found != ["ok"]:
        raise DatabaseFileError(
            f"{path}: the SQLite database is damaged (quick_check: {found[0]}); "
            f"not using it: {_RESTORE}"
        )


def _use_wal(cursor: sqlite3.Cursor) -> None:
    """Put the database in WAL mode (kept in the file, so this is a read once it is)."""
    if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
        return
    # Switching a fresh file to WAL while other processes open it can answer "database is
    # locked" at once: SQLite does not call the busy handler for this pragma. Wait it out.
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
        # Stop the sqlite3 module from issuing its own (deferred) BEGIN; _on_begin does it.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # busy_timeout first, so switching to WAL waits for other connections' locks.
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            _use_wal(cursor)
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        options = connection.get_execution_options()
        if options.get(WRITE_OPTION):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        elif not options.get(SINGLE_READ_OPTION):
            connection.exec_driver_sql("BEGIN")


def alembic_config() -> Config:
    """Build the Alembic configuration for the bundled migrations (no alembic.ini needed)."""
    from alembic.config import Config

    config = Config()
    # ConfigParser interpolation treats '%' specially.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    return config


def upgrade(engine: Engine) -> None:
    """Apply all migrations up to head; idempotent and safe when processes start together."""
    from alembic import command

    config = alembic_config()
    with writer(engine).connect() as connection, connection.begin():
        if connection.dialect.name == "postgresql":
            # Serialise concurrent upgrades; released when this transaction ends.
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID}
            )
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def current_revision(engine: Engine) -> str | None:
    """The migration a database is at (None for a new one)."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        return str(revision) if revision is not None else None
