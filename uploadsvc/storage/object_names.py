"""The names of an upload's objects, the same in every object store that keeps one object
per segment (S3, GCS), under the bucket's prefix:

- ``chunks/<key>/created``: the marker, which says the upload exists;
- ``chunks/<key>/at/<offset>``: a segment of its bytes, 20 digits so that names sort by
  offset;
- ``chunks/<key>/aside/<index>``: a chunk stored aside.
"""
from .base import UPLOAD_KEY

# Digits of an offset or an index in a name: names sort as the numbers do.
DIGITS = 20
# What no row owns is taken by cleanup once this old (seconds): a request in flight on
# another host (a long body, a join) must never lose its objects.
ORPHAN_AGE = 24 * 3600.0


class ObjectNames:
    """The names above, for a layout that has a `prefix` ("" or ending in "/")."""

    prefix: str

    def _upload_prefix(self, key: str) -> str:
        if not UPLOAD_KEY.fullmatch(key):
            raise ValueError("invalid upload key")
        return f"{self.prefix}chunks/{key}/"

    def _marker(self, key: str) -> str:
        return f"{self._upload_prefix(key)}created"

    def _segment_name(self, key: str, offset: int) -> str:
        return f"{self._upload_prefix(key)}at/{int(offset):0{DIGITS}d}"

    def _aside_name(self, key: str, index: int) -> str:
        return f"{self._upload_prefix(key)}aside/{int(index):0{DIGITS}d}"
