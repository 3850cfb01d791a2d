"""pymysql loaded without cryptography's RSA code (uploadsvc/core/mysql_driver.py): a worker
on MariaDB does without it, and a login that encrypts its password still can."""
import subprocess
import sys
import textwrap
from pathlib import Path

import requests

from uploadsvc import create_app
from uploadsvc.core.extensions import db

from .servers import GunicornServer

PROJECT = Path(__file__).resolve().parent.parent

# In a fresh interpreter: what the import leaves out, then MySQL's RSA password exchange
# (sha256_password and caching_sha2_password on a connection without TLS) through pymysql,
# checked against a key of our own as the server would decrypt it.
EXCHANGE = textwrap.dedent("""
    import sys
    from uploadsvc.core.mysql_driver import import_pymysql
    import_pymysql()
    import pymysql
    from pymysql import _auth
    print("loaded:", sorted(m for m in sys.modules if m.startswith("cryptography.hazmat.prim")))
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    salt = b"0123456789abcdefghij"
    sealed = pymysql._auth.sha2_rsa_encrypt(b"s3cret", salt, pem)
    oaep = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(),
                        label=None)
    opened = key.decrypt(sealed, oaep)
    print("password:", bytes(a ^ b for a, b in zip(opened, salt * 2))[:6].decode())
""")


def test_pymysql_loads_without_cryptography_and_encrypts_when_a_login_asks():
    done = subprocess.run([sys.executable, "-c", EXCHANGE], cwd=PROJECT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "loaded: []" in done.stdout
    assert "password: s3cret" in done.stdout


def test_workers_on_mariadb_serve_without_cryptography(mariadb, tmp_path):
    server = GunicornServer(tmp_path / "data", workers=2, threads=2,
                            database_url=mariadb.create_database("driver")).start()
    try:
        answer = requests.post(f"{server.url}/api/check-chunks", json={
            "md5": "0" * 32, "fileName": "a.bin", "totalChunks": 1}, timeout=10)
        assert answer.status_code == 200, answer.text
        for pid in server.worker_pids():
            mapped = Path(f"/proc/{pid}/maps").read_text()
            assert "cryptography" not in mapped, f"worker {pid} loaded cryptography"
    finally:
        server.stop()


def test_connections_share_one_default_tls_context(mariadb, tmp_path):
    """pymysql gives every connection without TLS settings a context of its own, the system's
    CA certificates loaded into each; the app's connections share one, and still work."""
    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path),
                      "DATABASE_URL": mariadb.create_database("tls_context")})
    with app.app_context():
        first, second = db.engine.raw_connection(), db.engine.raw_connection()
        try:
            contexts = {id(c.dbapi_connection.ctx) for c in (first, second)}
            assert len(contexts) == 1
            for connection in (first, second):
                cursor = connection.cursor()
                cursor.execute("SELECT 1")
                assert cursor.fetchone() == (1,)
        finally:
            first.close()
            second.close()
        db.engine.dispose()
