"""Apps with webhooks pointed at a test receiver, and looking into their outbox."""
from sqlalchemy import select

from uploadsvc.core.extensions import db
from uploadsvc.core.models import HookDelivery
from uploadsvc.services.events import deliverer

SECRET = "test-hook-secret"


def hook_config(receiver, **more) -> dict:
    """Webhooks to receiver, signed, with retries quick enough for a test."""
    return {"HOOK_URLS": receiver.url, "HOOK_SECRET": SECRET, "HOOK_RETRY_DELAY": "0.05s",
            "HOOK_TIMEOUT": 5, **more}


def deliver(app) -> int:
    """Run a deliverer until nothing is due, as `flask hooks deliver --once` does."""
    with app.app_context():
        return deliverer.deliver_until_idle()


def outbox(app) -> list[HookDelivery]:
    """Every delivery row, oldest first."""
    with app.app_context():
        rows = list(db.session.execute(select(HookDelivery).order_by(HookDelivery.id)).scalars())
        db.session.commit()
        return rows


def types_by_upload(events: list[dict]) -> dict[str, list[str]]:
    """Event types per upload id, in the order given."""
    found: dict[str, list[str]] = {}
    for event in events:
        found.setdefault(event["upload"]["id"], []).append(event["type"])
    return found
