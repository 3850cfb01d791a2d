"""The upload page's files as the server sends them (the page itself runs in test_upload_page)."""
import pytest

from uploadsvc import create_app


def test_page_is_served_at_root_with_a_strict_policy(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert '<input id="file-input" type="file" multiple>' in html
    assert '<label for="file-input"' in html
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy and "'unsafe-eval'" not in policy
    response.close()


@pytest.mark.parametrize("path", ["/page/upload.js", "/page/uploader.js", "/page/shared.js",
                                  "/page/md5-worker.js"])
def test_scripts_are_served_as_javascript(client, path):
    response = client.get(path)
    assert response.status_code == 200 and response.mimetype == "text/javascript"
    response.close()


def test_only_the_listed_library_files_are_served(client):
    response = client.get("/vendor/hash-wasm/md5.umd.min.js")
    assert response.status_code == 200 and response.mimetype == "text/javascript"
    assert b"createMD5" in response.get_data()
    response.close()
    for path in ("/vendor/hash-wasm/package.json", "/vendor/hash-wasm/dist/md5.umd.min.js",
                 "/vendor/../web/package.json", "/vendor/%2e%2e/%2e%2e/setup.cfg",
                 "/vendor/hash-wasm%2F..%2F..%2Fpackage.json"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.get_json()["success"] is False


def test_missing_library_says_how_to_install_it(data_dir, tmp_path):
    app = create_app({"TESTING": True, "DATA_DIR": str(data_dir),
                      "WEB_MODULES_DIR": str(tmp_path / "empty")})
    response = app.test_client().get("/vendor/hash-wasm/md5.umd.min.js")
    assert response.status_code == 404
    assert "make install" in response.get_json()["message"]


def test_page_can_be_turned_off(data_dir):
    app = create_app({"TESTING": True, "DATA_DIR": str(data_dir), "UPLOAD_PAGE": False})
    client = app.test_client()
    for path in ("/", "/page/upload.js", "/vendor/hash-wasm/md5.umd.min.js"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.get_json()["success"] is False
    assert client.get("/api/health").status_code == 200
