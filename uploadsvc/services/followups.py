"""Work a service leaves for after the answer is sent (hashing what arrived, dropping chunk
files): the service returns it, the HTTP layer runs it once the client has its answer, and
tests run it with the same run()."""
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class FollowUp:
    """One piece of work: work(*args), in an app context."""

    work: Callable[..., None]
    args: tuple = ()


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """A service's answer, and the follow-ups it leaves."""

    value: T
    later: tuple[FollowUp, ...] = field(default_factory=tuple)


def run(later: Iterable[FollowUp]) -> None:
    """Run follow-ups in order; a failure is logged (the client has its answer), and the
    rest still run."""
    for followup in later:
        try:
            followup.work(*followup.args)
        except Exception:
            log.exception("follow-up work failed: %s", getattr(followup.work, "__name__", "?"))
