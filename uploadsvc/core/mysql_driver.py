"""pymysql, imported without `cryptography` until a connection needs it, and with one TLS
context for all its connections.

pymysql imports cryptography's RSA code as it loads (about 8 MiB in every worker) for one
use: encrypting the password for MySQL's sha256_password and caching_sha2_password logins
on a connection with neither TLS nor a unix socket, when the server asks for the full
exchange. MariaDB never does; MySQL does once per server start and account, then uses its
cache. So pymysql loads here without it, and a login that needs it imports it then.

Every pymysql connection given no TLS settings builds a TLS context of its own (to use TLS
if the server offers it), loading the system's CA certificates into it: about 0.4 MiB of
each worker for every connection in its pool. They are all the same context, so the
process builds it once and its connections share it (a context may serve many sockets).
"""
import os
import sys
import threading

# The modules pymysql's _auth imports from cryptography.
NEEDED = ("cryptography.hazmat.backends", "cryptography.hazmat.primitives",
          "cryptography.hazmat.primitives.asymmetric")


_prepared = False


def import_pymysql() -> None:
    """Import pymysql, deferring cryptography to the first login that encrypts with it
    (unless pymysql or cryptography's RSA code is loaded already), and have its
    connections share one default TLS context; once per process."""
    global _prepared
    if _prepared:
        return
    if "pymysql" not in sys.modules and not any(name in sys.modules for name in NEEDED):
        _import_without_cryptography()
    _share_default_tls_context()
    _prepared = True


def _import_without_cryptography() -> None:
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


def _share_default_tls_context() -> None:
    """One TLS context per process for the connections that ask for pymysql's default one
    (no TLS settings: TLS if the server offers it)."""
    from pymysql.connections import Connection

    build = Connection._create_ssl_ctx
    shared: dict[int, object] = {}
    lock = threading.Lock()

    def _create_ssl_ctx(self, sslp):
        if not (isinstance(sslp, dict) and not sslp):  # settings of its own
            return build(self, sslp)
        with lock:
            if os.getpid() not in shared:
                shared.clear()
                shared[os.getpid()] = build(self, sslp)
            return shared[os.getpid()]

    Connection._create_ssl_ctx = _create_ssl_ctx
