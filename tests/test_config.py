"""The factory and configuration sources."""
from datetime import timedelta

import pytest

from uploadsvc import create_app


def test_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("UPLOADSVC_INSTANCE_PATH", str(tmp_path / "instance"))
    app = create_app()
    assert app.config["DATA_DIR"] == str(tmp_path / "instance")
    assert app.config["DATABASE_URL"] == f"sqlite:///{tmp_path}/instance/uploadsvc.sqlite3"
    assert app.config["MAX_FILE_SIZE"] == 10 * 1024**3
    assert app.config["UPLOAD_EXPIRY"] == timedelta(hours=24)
    assert "http://localhost:5173" in app.config["CORS_ORIGINS"]
    assert not app.testing and not app.debug
    for name in ("temp", "chunks", "uploads"):
        assert (tmp_path / "instance" / name).is_dir()


def test_test_config_overrides(tmp_path):
    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path)})
    assert app.testing and app.config["DATA_DIR"] == str(tmp_path)


def test_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("UPLOADSVC_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("UPLOADSVC_DATABASE_URL", f"sqlite:///{tmp_path}/other.db")
    monkeypatch.setenv("UPLOADSVC_CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("UPLOADSVC_UPLOAD_EXPIRY", "7d")
    monkeypatch.setenv("UPLOADSVC_MAX_TOTAL_CHUNKS", "500")
    monkeypatch.setenv("MAX_FILE_SIZE", "1048576")
    app = create_app()
    assert app.config["DATA_DIR"] == str(tmp_path / "d")
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path}/other.db"
    assert app.config["CORS_ORIGINS"] == ["https://a.example", "https://b.example"]
    assert app.config["UPLOAD_EXPIRY"] == timedelta(days=7)
    assert app.config["MAX_TOTAL_CHUNKS"] == 500
    assert app.config["MAX_FILE_SIZE"] == 1048576
    assert app.config["MAX_CONTENT_LENGTH"] == 1048576 + 1024 * 1024


@pytest.mark.parametrize("written, on", [("off", False), ("no", False), ("0", False),
                                         ("false", False), ("on", True), ("true", True)])
def test_switches_read_as_written_in_the_environment(monkeypatch, tmp_path, written, on):
    monkeypatch.setenv("UPLOADSVC_DATA_DIR", str(tmp_path))
    for name in ("DOWNLOADS", "UPLOAD_PAGE", "S3_EQUAL_PARTS"):
        monkeypatch.setenv(f"UPLOADSVC_{name}", written)
    app = create_app()
    assert [app.config[name] for name in ("DOWNLOADS", "UPLOAD_PAGE", "S3_EQUAL_PARTS")] == [on] * 3
    with app.test_client().get("/") as page:
        assert page.status_code == (200 if on else 404)
    paths = app.test_client().get("/api/openapi.json").get_json()["paths"]
    assert ("/" in paths) is on and ("/uploads/{stored_name}" in paths) is on


def test_instance_config_file(monkeypatch, tmp_path):
    instance = tmp_path / "instance"
    instance.mkdir()
    (instance / "config.py").write_text("MAX_TOTAL_CHUNKS = 42\nUPLOAD_EXPIRY = '2h'\n")
    monkeypatch.setenv("UPLOADSVC_INSTANCE_PATH", str(instance))
    app = create_app()
    assert app.config["MAX_TOTAL_CHUNKS"] == 42
    assert app.config["UPLOAD_EXPIRY"] == timedelta(hours=2)
    monkeypatch.setenv("UPLOADSVC_MAX_TOTAL_CHUNKS", "43")
    assert create_app().config["MAX_TOTAL_CHUNKS"] == 43  # environment beats the file


def test_cors_origins_from_config(tmp_path):
    app = create_app({"DATA_DIR": str(tmp_path), "CORS_ORIGINS": "https://only.example"})
    client = app.test_client()
    ok = client.get("/api/health", headers={"Origin": "https://only.example"})
    assert ok.headers["Access-Control-Allow-Origin"] == "https://only.example"
    other = client.get("/api/health", headers={"Origin": "http://localhost:5173"})
    assert "Access-Control-Allow-Origin" not in other.headers
