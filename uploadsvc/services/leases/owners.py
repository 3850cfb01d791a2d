"""Who holds a lease: a process of some host, named so that its own host can tell whether
it still runs (services.leases)."""
import hashlib
import os

from ...storage.boot import BOOT_ID


def host_id(data_dir: str | None) -> str:
    """This host as its leases name it: the boot of the machine, the pid namespace (a
    container is a host of its own) and the data directory (two instances on one machine
    are two hosts)."""
    try:
        namespace = str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        namespace = ""
    place = hashlib.sha256(os.path.abspath(data_dir or "").encode()).hexdigest()[:12]
    return f"{BOOT_ID or 'unknown'}:{namespace}:{place}"


def process() -> str:
    pid = os.getpid()
    return f"{pid}/{start_time(pid)}"


def parse(owner: str) -> tuple[str, int, str | None]:
    host, _, rest = owner.partition("/")
    pid, _, start = rest.partition("/")
    try:
        return host, int(pid), start
    except ValueError:
        return host, -1, start


def start_time(pid: int) -> str | None:
    """When the process started (clock ticks since boot), None if there is none: with
    the pid it names one process, even after the pid is reused."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        return None
