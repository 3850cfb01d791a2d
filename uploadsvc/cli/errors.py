"""One-line errors for the flask commands: what went wrong and what to do about it."""
import errno

import click
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL

# Longest message taken from an exception; the rest of a long one is cut off with "...".
MAX_DETAIL = 200
DEFAULT_PORTS = {"mysql": 3306, "mariadb": 3306, "postgresql": 5432}
# MySQL client errors: the server was not reached, or the connection to it broke.
MYSQL_UNREACHABLE = {2002, 2003, 2005, 2006, 2013, 2055}
MYSQL_ACCESS_DENIED = {1044, 1045}
MYSQL_NO_DATABASE = 1049
MYSQL_NO_TABLE = 1146
MYSQL_NO_COLUMN = 1054
MYSQL_FULL = {1021, 1114}
NOT_WRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS}
DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


class CommandError(click.ClickException):
    """A failure shown as one line on stderr, "error: ...", with exit status 1."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))  # one line, whatever the parts held

    def show(self, file=None) -> None:
        """Print the message as one line on stderr (or file)."""
        click.echo(f"error: {self.format_message()}", file=file, err=True)


def describe(exc: BaseException, url: URL | None, upgrade: str, debug_hint: str,
             data_dir: str | None = None) -> str:
    """The one-line message for exc; upgrade is the migrate command, debug_hint the rerun."""
    if isinstance(exc, sa_exc.DBAPIError):
        return describe_database(exc, url, upgrade) or (
            f"database error: {_name(exc.orig)}: {detail(exc.orig)} ({debug_hint})")
    os_error = _os_error(exc)
    if os_error is not None:
        return describe_os_error(os_error, data_dir)
    return f"unexpected {_name(exc)}: {detail(exc)} ({debug_hint})"


def describe_database(exc: sa_exc.DBAPIError, url: URL | None, upgrade: str) -> str | None:
    """The message for a database error we know what to do about; None for others."""
    orig = exc.orig
    code = orig.args[0] if orig.args and isinstance(orig.args[0], int) else None
    pgcode = getattr(orig, "pgcode", None)
    text = detail(orig)
    low = text.lower()
    where = address(url)
    if "no such table" in low or code == MYSQL_NO_TABLE or pgcode == "42P01":
        return f"the database is missing a table ({text}); run `{upgrade}`"
    if "no such column" in low or code == MYSQL_NO_COLUMN or pgcode == "42703":
        return f"the database schema is out of date ({text}); run `{upgrade}`"
    if code in MYSQL_UNREACHABLE or (pgcode is None and "could not connect" in low):
        return (f"cannot reach the database at {where} ({_reason(text)}); check "
                "UPLOADSVC_DATABASE_URL and that the database server is running")
    if code in MYSQL_ACCESS_DENIED:
        return f"the database at {where} refused the login ({text}); check UPLOADSVC_DATABASE_URL"
    if code == MYSQL_NO_DATABASE:
        return (f"the database server at {where} has no database named "
                f"{url.database if url else '?'!r}; create it, then run `{upgrade}`")
    if "disk is full" in low or code in MYSQL_FULL:
        return f"the disk holding the database is full ({text}); free some space"
    return _describe_sqlite(low, text, url)


def _describe_sqlite(low: str, text: str, url: URL | None) -> str | None:
    path = url.database if url is not None else None
    if "unable to open database file" in low:
        return (f"cannot open the SQLite database {path} ({text}); check that its "
                "directory exists and is writable by this user")
    if "readonly database" in low:
        return (f"the SQLite database {path} is read-only ({text}); make the file and its "
                "directory writable by this user")
    if "database is locked" in low:
        return f"the SQLite database {path} is locked by another process ({text}); try again"
    if "file is not a database" in low:
        return f"{path} is not a SQLite database ({text}); check UPLOADSVC_DATABASE_URL"
    return None


def describe_os_error(exc: OSError, data_dir: str | None) -> str:
    """The message for a failed file operation: what failed on which path, and what to do."""
    what = exc.strerror or detail(exc)
    if exc.filename:
        what += f": {exc.filename}"
    directory = data_dir or "the data directory"
    if exc.errno in DISK_FULL:
        return f"the disk is full ({what}); free some space on the disk holding {directory}"
    if exc.errno in NOT_WRITABLE:
        return f"cannot write to the data directory ({what}); make {directory} writable"
    return f"file operation failed ({what}); check {directory}"


def address(url: URL | None) -> str:
    """host:port of a server URL (never the password), or its socket or SQLite file."""
    if url is None:
        return "?"
    if url.get_backend_name() == "sqlite":
        return url.database or ":memory:"
    socket = url.query.get("unix_socket")
    if socket:
        return str(socket)
    port = url.port or DEFAULT_PORTS.get(url.get_backend_name(), "?")
    return f"{url.host or 'localhost'}:{port}"


def detail(exc: BaseException) -> str:
    """The exception's message as one short line (a MySQL error's text without its code)."""
    args = exc.args
    if len(args) == 2 and isinstance(args[0], int) and isinstance(args[1], str):
        text = f"{args[0]} {args[1]}"
    else:
        text = str(exc) or "no message"
    text = " ".join(text.split())
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 3] + "..."


def _reason(text: str) -> str:
    """The innermost reason of a connection error, e.g. "Connection refused"."""
    # pymysql: "2003 Can't connect to MySQL server on '127.0.0.1' ([Errno 111] Connection refused)"
    if "] " in text and text.endswith(")"):
        return text[text.rindex("] ") + 2:-1]
    return text


def _os_error(exc: BaseException) -> OSError | None:
    """exc, or the OSError it was raised from (the store's StorageFull wraps one)."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError):
            return exc
        exc = exc.__cause__
        seen += 1
    return None


def _name(exc: BaseException) -> str:
    cls = type(exc)
    module = "" if cls.__module__ == "builtins" else cls.__module__ + "."
    return module + cls.__qualname__
