"""Command classes whose failures end in one line on stderr and exit status 1."""
# Cron mails and new users get "error: <what is wrong>; <what to do>", not a traceback. The
# traceback is printed too, above that line, in Flask's debug mode: `flask --debug ...` or
# FLASK_DEBUG=1 (Flask's own switch, so it works for every command, `db` too).
import copy
import sys
import traceback
from collections.abc import Callable
from typing import Any

import click
from flask import current_app, has_app_context
from flask.cli import AppGroup, ScriptInfo
from flask.helpers import get_debug_flag
from sqlalchemy import inspect
from sqlalchemy.engine import URL, Connection, make_url

from ..core.extensions import db
from .errors import CommandError, describe

EPILOG = ("On failure it prints one line on stderr, \"error: ...\", and exits with status 1; "
          "`flask --debug ...` or FLASK_DEBUG=1 prints the traceback as well.")
# Raised by click itself to stop (Abort and Exit are RuntimeErrors): never ours to explain.
CLICK_EXITS = (click.ClickException, click.exceptions.Exit, click.exceptions.Abort)


class GuardedCommand(click.Command):
    """A command that explains failures in one line, after checking the schema if asked."""

    def __init__(self, *args: Any, needs_schema: bool = True, **kwargs: Any) -> None:
        kwargs.setdefault("epilog", EPILOG)
        super().__init__(*args, **kwargs)
        self.needs_schema = needs_schema

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; any exception it raises becomes a one-line CommandError."""
        return run_guarded(ctx, super().invoke, self.needs_schema)


class GuardedGroup(AppGroup):
    """An AppGroup whose subcommands are GuardedCommands."""

    command_class = GuardedCommand

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("epilog", EPILOG)
        super().__init__(*args, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:
        """Run the subcommand; any exception it raises becomes a one-line CommandError."""
        return run_guarded(ctx, super().invoke, needs_schema=False)


class _GuardedInvoke:
    """Mixed into a copy of another package's group (Flask-Migrate's `db`)."""

    def invoke(self, ctx: click.Context) -> Any:
        return run_guarded(ctx, super().invoke, needs_schema=False)  # type: ignore[misc]


def guarded_copy(group: click.Group) -> click.Group:
    """A copy of group whose failures end in one line; group itself is left as it was."""
    guarded = copy.copy(group)
    guarded.__class__ = type(f"Guarded{type(group).__name__}", (_GuardedInvoke, type(group)), {})
    return guarded


def run_guarded(ctx: click.Context, invoke: Callable[[click.Context], Any],
                needs_schema: bool) -> Any:
    """invoke(ctx) in the app context; exceptions but click's become one-line CommandErrors."""
    try:
        if not has_app_context():
            app = ctx.ensure_object(ScriptInfo).load_app()
            ctx.with_resource(app.app_context())
        if needs_schema:
            check_schema(flask_command(ctx, "db upgrade"))
        return invoke(ctx)
    except CLICK_EXITS:
        raise
    except Exception as exc:
        if debugging():
            traceback.print_exc(file=sys.stderr)
        raise CommandError(describe(
            exc, _database_url(), flask_command(ctx, "db upgrade"),
            f"run `{flask_command(ctx, _subcommand(ctx), debug=True)}` for the traceback",
            current_app.config.get("DATA_DIR") if has_app_context() else None,
        )) from exc


def check_schema(upgrade: str) -> None:
    """Raise CommandError unless the database is migrated (an unreachable one: driver error)."""
    with db.engine.connect() as connection:
        current = _current_revisions(connection)
        has_tables = bool(current) or inspect(connection).has_table("uploads")
    if not has_tables:
        raise CommandError(f"the database has no tables yet; run `{upgrade}`")
    heads, known = _code_revisions()
    if current and heads and current != heads and current <= known:
        raise CommandError(f"the database schema is out of date (at {', '.join(sorted(current))}, "
                           f"this version needs {', '.join(sorted(heads))}); run `{upgrade}`")
    # No revision but tables (made without Alembic), or one newer than this code: go on.


def _current_revisions(connection: Connection) -> set[str]:
    from alembic.runtime.migration import MigrationContext

    return set(MigrationContext.configure(connection).get_current_heads())


def _code_revisions() -> tuple[set[str], set[str]]:
    """(heads, all revisions) of the migrations this code ships; empty without Migrate."""
    migrate = current_app.extensions.get("migrate")
    if migrate is None:
        return set(), set()
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError as AlembicError

    try:
        script = ScriptDirectory.from_config(migrate.migrate.get_config())
        return set(script.get_heads()), {rev.revision for rev in script.walk_revisions()}
    except AlembicError:  # no migrations shipped here: the tables' presence is all we check
        return set(), set()


def debugging() -> bool:
    """Whether to print tracebacks: Flask's debug mode (--debug, FLASK_DEBUG=1)."""
    return bool(current_app.debug) if has_app_context() else get_debug_flag()


def flask_command(ctx: click.Context, subcommand: str, debug: bool = False) -> str:
    """The command line that runs subcommand on this app, e.g. `flask --app uploadsvc stats`."""
    root = ctx.find_root()
    info = root.find_object(ScriptInfo)
    app = f" --app {info.app_import_path}" if info and info.app_import_path else ""
    return f"{root.info_name or 'flask'}{app}{' --debug' if debug else ''} {subcommand}"


def _subcommand(ctx: click.Context) -> str:
    """This command's path below the root, with a group's running subcommand: "keys list"."""
    names = [ctx.invoked_subcommand] if ctx.invoked_subcommand else []
    while ctx.parent is not None:
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    return " ".join(reversed(names))


def _database_url() -> URL | None:
    if not has_app_context():
        return None
    try:
        return make_url(current_app.config["SQLALCHEMY_DATABASE_URI"])
    except Exception:  # a URL too broken to parse is reported by what it broke
        return None
