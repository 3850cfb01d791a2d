"""The version of uploadsvc, the server and its command-line client alike."""
__version__ = "1.0.0"
