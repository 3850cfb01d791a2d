"""pymysql, imported without `cryptography` until a connection needs it.

pymysql imports cryptography's RSA code as it loads (about 8 MiB in every worker) for one
use: encrypting the password for MySQL's sha256_password and caching_sha2_password logins
on a connection with neither TLS nor a unix socket, when the server asks for the full
exchange. MariaDB never does; MySQL does once per server start and account, then uses its
cache. So pymysql loads here without it, and a login that needs it imports it then.
"""
import sys

# The modules pymysql's _auth imports from cryptography.
NEEDED = ("cryptography.hazmat.backends", "cryptography.hazmat.primitives",
          "cryptography.hazmat.primitives.asymmetric")


def import_pymysql() -> None:
    """Import pymysql, deferring cryptography to the first login that encrypts with it
    (nothing to do if pymysql or cryptography's RSA code is loaded already)."""
    if "pymysql" in sys.modules or any(name in sys.modules for name in NEEDED):
        return
    for name in NEEDED:
        sys.modules[name] = None  # makes `import name` fail: pymysql does without
    try:
        from pymysql import _auth
    finally:
        for name in NEEDED:
            del sys.modules[name]
    encrypt = _auth.sha2_rsa_encrypt

    def sha2_rsa_encrypt(password: bytes, salt: bytes, public_key: bytes) -> bytes:
        if not _auth._have_cryptography:
            try:  # what pymysql's _auth imports as it loads
                from cryptography.hazmat.backends import default_backend
                from cryptography.hazmat.primitives import hashes, serialization
                from cryptography.hazmat.primitives.asymmetric import padding
            except ImportError:
                pass  # pymysql says cryptography is needed
            else:
                _auth.default_backend, _auth.hashes = default_backend, hashes
                _auth.serialization, _auth.padding = serialization, padding
                _auth._have_cryptography = True
        return encrypt(password, salt, public_key)

    _auth.sha2_rsa_encrypt = sha2_rsa_encrypt
