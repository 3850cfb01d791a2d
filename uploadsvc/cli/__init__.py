"""flask commands: cleanup, stats and keys."""
from flask import Flask

from . import commands


def init_app(app: Flask) -> None:
    commands.init_app(app)
