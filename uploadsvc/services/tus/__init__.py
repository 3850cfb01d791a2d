"""tus 1.0 under /files/: an upload's life (uploads) and the bytes a PATCH appends
(writes)."""
