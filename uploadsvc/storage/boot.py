"""This boot of this machine, as the kernel names it: what tells a restart of the machine
from a restart of a process (the local store's boot marks, the leases' owners)."""


def read_boot_id() -> str | None:
    """The kernel's id of this boot of the machine (None where it cannot be read)."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip() or None
    except OSError:
        return None


BOOT_ID = read_boot_id()
