"""The seed API's chunked flows under /api: an upload's row (uploads), a chunk stored
(chunks), chunks read from a streamed multipart body (streamed), the merge (completion)."""
