"""Which boot of the machine wrote bytes that were not fsync'd as they were written.

Under FSYNC "complete", chunks and tus PATCHes are written without fsync. Pages are written
back in no particular order, so after a machine crash such a file may hold zeros where the
page cache was lost, even at its full size. A mark holding the kernel's boot id tells: one
from another boot means the bytes are not to be trusted. Where the boot id cannot be read
(not Linux), files are trusted as before.
"""
import os
import tempfile

from .layout import Layout

# The boot of the machine that last wrote bytes into the upload's directory without fsync.
DATA_BOOT = ".data-boot"


class BootMarks(Layout):
    """The local store's answer to "did the machine restart under these bytes?"."""

    def lost_in_restart(self, key: str) -> bool:
        return (os.path.exists(os.path.join(self._chunk_dir(key), DATA_BOOT))
                and not self._begun_this_boot(key))

    def _unsynced_bytes_follow(self, key: str) -> None:
        """Mark the upload before bytes are written into it without fsync."""
        if not self.sync_chunks and not self._begun_this_boot(key):
            self._mark_boot(key)

    def _mark_boot(self, key: str) -> None:
        """Mark the upload as written in this boot; the mark is on the disk before the bytes
        it speaks for are written (once per upload and boot, so its fsyncs cost little)."""
        if self.boot_id is not None:  # written aside and renamed: never seen half-written
            fd, path = tempfile.mkstemp(dir=self._chunk_dir(key), prefix=".", suffix=".part")
            with open(fd, "w") as mark:
                mark.write(self.boot_id)
                mark.flush()
                self._sync(mark.fileno())
            os.replace(path, os.path.join(self._chunk_dir(key), DATA_BOOT))
            self._sync_dir(self._chunk_dir(key))

    def _begun_this_boot(self, key: str) -> bool:
        if self.boot_id is None:
            return True
        try:
            with open(os.path.join(self._chunk_dir(key), DATA_BOOT)) as mark:
                return mark.read() == self.boot_id
        except FileNotFoundError:
            return False
