"""uploadsvc-upload: a command-line client for the upload API. A pure HTTP client: it imports
none of the server's modules, so it runs anywhere requests runs."""
