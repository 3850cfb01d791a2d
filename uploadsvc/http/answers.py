"""How answers write their values, on every route: times as the original server wrote them."""
from datetime import datetime


def iso(moment: datetime | None) -> str | None:
    """ISO-8601 in UTC with milliseconds, as the original server wrote them."""
    if moment is None:
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
