"""Composing pieces of objects into one object, in the store.

GCS composes up to 32 whole objects per request into a new one, with no copy of their bytes
through the app. A piece that is only part of an object (a segment cut short by a later one)
is stored alone first, read back through a local file; more than 32 sources are composed in
rounds (a tree of composes), whose intermediate objects are removed when the join ends.
"""
import uuid

from google.api_core import exceptions as api

from ..errors import NameTaken
from ..spool import anonymous_file
from .client import gcs_errors
from .layout import GCSLayout, Piece

# GCS's limit of sources in one compose.
MAX_SOURCES = 32


class Composer(GCSLayout):
    """join(): pieces of objects of the bucket composed into one object."""

    def _join(self, pieces: list[Piece], dest: str, exclusive: bool = False) -> None:
        """Store the pieces, in order, as the object dest; with exclusive, never over an
        object already there (NameTaken)."""
        made: list[str] = []
        try:
            sources = [piece.name if piece.whole else self._alone(piece, made)
                       for piece in pieces if piece.size]
            while len(sources) > MAX_SOURCES:
                rounds = []
                for first in range(0, len(sources), MAX_SOURCES):
                    middle = f"{self.prefix}sealed/{uuid.uuid4().hex}.join"
                    made.append(middle)
                    self._compose(sources[first:first + MAX_SOURCES], middle)
                    rounds.append(middle)
                sources = rounds
            if not sources:
                with open(anonymous_file(self.temp_dir), "w+b", buffering=0) as empty:
                    self._put(dest, empty, 0, exclusive)
            else:
                self._compose(sources, dest, exclusive)
        finally:
            self._delete_all(made)

    def _compose(self, sources: list[str], dest: str, exclusive: bool = False) -> None:
        extra = {"if_generation_match": 0} if exclusive else {}
        with gcs_errors("composing objects"):
            try:
                self.client.blob(dest).compose([self.client.blob(name) for name in sources],
                                               **self.client.options, **extra)
            except api.PreconditionFailed:
                raise NameTaken(dest) from None

    def _alone(self, piece: Piece, made: list[str]) -> str:
        """A piece that is part of an object, stored as an object of its own; its name."""
        name = f"{self.prefix}sealed/{uuid.uuid4().hex}.cut"
        made.append(name)
        with open(anonymous_file(self.temp_dir), "w+b", buffering=0) as local:
            for data in self._read([piece]):
                local.write(data)
            local.seek(0)
            self._put(name, local, piece.size)
        return name
