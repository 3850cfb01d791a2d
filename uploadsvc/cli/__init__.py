"""flask commands: cleanup, stats, keys and hooks."""
from flask import Flask

from . import commands, hooks


def init_app(app: Flask) -> None:
    commands.init_app(app)
    app.cli.add_command(hooks.hooks_group)
