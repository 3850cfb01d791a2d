"""WSGI entry point for gunicorn: ``gunicorn -c gunicorn.conf.py``."""
import click

from uploadsvc import create_app

try:
    app = create_app()
except click.ClickException as exc:  # a setting that cannot work: one line, not a traceback
    exc.show()
    raise SystemExit(1) from None
