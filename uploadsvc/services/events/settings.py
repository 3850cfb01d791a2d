"""The hook settings as written, turned into what the services read, and the event names
webhooks report."""
from ...core import database
from ...core.models import UploadEvent
from ...core.units import parse_bool, parse_duration, parse_origins

# The events webhooks report, by the names HOOK_EVENTS and the JSON's "type" use.
HOOKED = (UploadEvent.CREATED, UploadEvent.COMPLETED, UploadEvent.VERIFICATION_FAILED,
          UploadEvent.DELETED, UploadEvent.EXPIRED)
TYPE_PREFIX = "upload."
FAIL_MODES = ("closed", "open")


def event_type(kind: str) -> str:
    return TYPE_PREFIX + kind


def parse_events(value) -> frozenset[str]:
    """HOOK_EVENTS: "all" (or empty), or names like created,completed (upload. optional)."""
    names = [name.removeprefix(TYPE_PREFIX) for name in parse_origins(value or "all")]
    if names == ["all"]:
        return frozenset(HOOKED)
    unknown = sorted(set(names) - set(HOOKED))
    if unknown:
        raise ValueError(f"not a hook event: {', '.join(unknown)} (use {', '.join(HOOKED)})")
    return frozenset(names)


def configure(config) -> None:
    """Turn the hook settings as written into the values the services read."""
    config["HOOK_URLS"] = parse_origins(config["HOOK_URLS"] or "")
    config["HOOK_EVENTS"] = parse_events(config["HOOK_EVENTS"])
    for key in ("HOOK_LEASE", "HOOK_RETRY_DELAY", "HOOK_RETRY_FOR", "EVENT_RETENTION"):
        config[key] = parse_duration(config[key])
    config["HOOK_TIMEOUT"] = float(config["HOOK_TIMEOUT"])
    config["HOOK_POLL_INTERVAL"] = float(config["HOOK_POLL_INTERVAL"])
    config["PRE_CREATE_HOOK_TIMEOUT"] = float(config["PRE_CREATE_HOOK_TIMEOUT"])
    fail = str(config["PRE_CREATE_HOOK_FAIL"]).strip().lower()
    if fail not in FAIL_MODES:
        raise ValueError(f"not a PRE_CREATE_HOOK_FAIL setting: {fail!r} (use closed or open)")
    config["PRE_CREATE_HOOK_FAIL"] = fail


def delivers_here(config) -> bool:
    """Whether this process runs a deliverer thread: HOOK_DELIVERER "auto" means in
    gunicorn workers (so `make run` delivers), not in `flask` commands or tests."""
    if not config["HOOK_URLS"]:
        return False
    switch = config["HOOK_DELIVERER"]
    if isinstance(switch, str) and switch.strip().lower() == "auto":
        return database._serving()
    return parse_bool(switch)

