"""`flask hooks`: the webhook outbox for operators (list, retry) and for cron or systemd
(deliver)."""
import time

import click
from flask import current_app
from flask.cli import with_appcontext

from ..core.models import FAILED
from ..services.events import deliverer, outbox
from .errors import CommandError
from .guard import GuardedGroup


@click.group("hooks", cls=GuardedGroup)
def hooks_group():
    """Webhook deliveries: list them, retry failed ones, deliver (UPLOADSVC_HOOK_URLS)."""


@hooks_group.command("list")
@click.option("--failed", is_flag=True, help="Only deliveries that were given up.")
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
def hooks_list(failed, limit):
    """List deliveries, newest first: id, status, attempts, event, upload, endpoint, error."""
    for row in outbox.deliveries(FAILED if failed else None, limit):
        click.echo(f"{row.id:>6}  {row.status:<9} {row.attempts:>3}  "
                   f"{row.created_at:%Y-%m-%d %H:%M:%S}  {row.kind:<19} {row.event_id}  "
                   f"{row.upload_key}  {row.url}  {row.last_error or ''}".rstrip())


@hooks_group.command("retry")
@click.argument("delivery_id", type=int, required=False)
@click.option("--all-failed", is_flag=True, help="Every failed delivery.")
def hooks_retry(delivery_id, all_failed):
    """Send the failed delivery DELIVERY_ID (or --all-failed) again, from now."""
    if (delivery_id is None) == (not all_failed):
        raise CommandError("name one delivery ID or --all-failed")
    count = outbox.retry(None if all_failed else delivery_id)
    if delivery_id is not None and not count:
        raise CommandError(f"no failed delivery {delivery_id}")
    click.echo(f"{count} deliveries to be sent again")


@hooks_group.command("deliver")
@click.option("--once", is_flag=True, help="Deliver what is due, then exit (for cron).")
@with_appcontext
def hooks_deliver(once):
    """Deliver the outbox: until nothing is due with --once, else until stopped."""
    if not once:
        interval = current_app.config["HOOK_POLL_INTERVAL"]
        while True:  # a systemd service; stopped by its signal
            if not deliverer.deliver_until_idle():
                time.sleep(interval)
    click.echo(f"{deliverer.deliver_until_idle()} deliveries attempted")
