"""Parsing of human-written configuration values: durations, switches and origin lists."""
import re
from datetime import timedelta

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw]?)")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: str | int | float | timedelta) -> timedelta:
    """Turn ``90``, ``"45m"``, ``"24h"`` or ``"7d"`` into a timedelta; bare numbers are seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return timedelta(seconds=value)
    match = _DURATION.fullmatch(str(value).strip().lower())
    if not match:
        raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 45m, 24h, 7d)")
    return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def parse_bool(value: str | int | bool | None) -> bool:
    """Read on/off settings written as true/false, 1/0, yes/no or on/off."""
    if isinstance(value, str):
        return value.strip().lower() not in ("", "0", "false", "no", "off")
    return bool(value)


FSYNC_COMPLETE = "complete"


def parse_fsync(value: str | int | bool | None) -> bool | str:
    """FSYNC: true/false (as parse_bool reads them) or "complete"."""
    if isinstance(value, str) and value.strip().lower() == FSYNC_COMPLETE:
        return FSYNC_COMPLETE
    if isinstance(value, str) and value.strip().lower() not in (
            "", "0", "1", "false", "true", "no", "yes", "off", "on"):
        raise ValueError(f"not an FSYNC setting: {value!r} (use true, complete or false)")
    return parse_bool(value)


def parse_origins(value: str | list | tuple) -> list[str]:
    """Accept a comma-separated string or a list of origins."""
    items = value.split(",") if isinstance(value, str) else list(value)
    return [item.strip() for item in items if item and item.strip()]
