"""The IETF resumable upload draft on the tus endpoint: uploads of protocol "ietf" on the
same rows, store, locks, hashing, limits and events as tus uploads (services.tus).
Creating and appending (appends), taking an upload over from a request still running on
it, offset retrieval and cancellation (takeover)."""
