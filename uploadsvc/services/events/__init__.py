"""Telling other systems about uploads: the hook settings (settings), events kept in the
outbox (outbox) and sent by a thread of each worker (deliverer), signed (signatures), the
pre-create hook asked before an upload is created (precreate), and what is kept how long
(retention)."""
from flask import Flask

from . import settings
from .deliverer import DelivererThread


def init_app(app: Flask) -> None:
    """Read the hook settings; start this process's deliverer when it should have one."""
    settings.configure(app.config)
    if settings.delivers_here(app.config):
        app.extensions["hook_deliverer"] = DelivererThread(app).start()
