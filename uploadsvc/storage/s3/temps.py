"""The object store backend's temporary things, for cleanup: local files of parts on their
way that earlier versions left in ``temp/`` (they have no name now, see spool.py), sealed
objects never published (``sealed/``) and multipart uploads left
unfinished under the prefix (a worker killed mid-join; the bucket's lifecycle rule
AbortIncompleteMultipartUpload is the backstop for the ones nobody cleans)."""
import os
from collections.abc import Iterator

from ..files import unlink_quietly
from .layout import S3Layout

MULTIPART = "multipart/"
SEALED = "sealed/"
LOCAL = "temp/"


class S3Temps(S3Layout):
    """temp_files() and remove_temp_file() of a bucket prefix and its local temp/."""

    def temp_files(self) -> Iterator[tuple[str, float]]:
        with os.scandir(self.temp_dir) as entries:
            for entry in entries:
                if entry.name.endswith(".part") and entry.is_file(follow_symlinks=False):
                    yield LOCAL + entry.name, entry.stat(follow_symlinks=False).st_mtime
        for item in self._list(self.prefix + SEALED):
            yield item["Key"][len(self.prefix):], item["LastModified"].timestamp()
        for upload in self._multipart_uploads(self.prefix):
            name = upload["Key"][len(self.prefix):]
            yield f"{MULTIPART}{name}?{upload['UploadId']}", upload["Initiated"].timestamp()

    def remove_temp_file(self, name: str) -> None:
        if name.startswith(LOCAL):
            base = name[len(LOCAL):]
            if base.endswith(".part") and "/" not in base and base not in ("", ".", ".."):
                unlink_quietly(os.path.join(self.temp_dir, base))
        elif name.startswith(SEALED) and "/" not in name[len(SEALED):]:
            self._delete_all([self.prefix + name])
        elif name.startswith(MULTIPART):
            key, _, upload_id = name[len(MULTIPART):].rpartition("?")
            if key and upload_id:
                self.joiner.abort(self.prefix + key, upload_id)
