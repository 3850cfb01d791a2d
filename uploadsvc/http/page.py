"""The upload page at / : static HTML and JavaScript, plus the browser libraries it loads."""
import os

from flask import Blueprint, current_app, send_file, send_from_directory

from ..services.errors import UploadError

bp = Blueprint("page", __name__, static_folder="page_assets", static_url_path="/page")

# The only files served from node_modules: URL name -> path under the modules folder.
VENDOR_FILES = {"hash-wasm/md5.umd.min.js": "hash-wasm/dist/md5.umd.min.js"}

# hash-wasm compiles WebAssembly, which a strict policy must allow explicitly.
POLICY = ("default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; "
          "img-src 'self' data:; connect-src 'self'; worker-src 'self'; object-src 'none'; "
          "base-uri 'none'; frame-ancestors 'none'")


class PageDisabled(UploadError):
    status = 404
    code = "not_found"
    message = "The upload page is turned off on this server."


class VendorFileMissing(UploadError):
    status = 404
    code = "not_found"
    message = "This browser library is not installed; run `make install`."


@bp.before_request
def page_enabled():
    if not current_app.config["UPLOAD_PAGE"]:
        raise PageDisabled()


@bp.after_request
def security_headers(response):
    response.headers.setdefault("Content-Security-Policy", POLICY)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.get("/")
def index():
    """The upload page."""
    return send_from_directory(bp.static_folder, "index.html", max_age=0)


@bp.get("/vendor/<path:name>")
def vendor(name: str):
    """One of the few whitelisted browser libraries, from the npm-installed modules."""
    if name not in VENDOR_FILES:
        raise VendorFileMissing("No such library.")
    path = os.path.join(modules_dir(), VENDOR_FILES[name])
    if not os.path.isfile(path):
        raise VendorFileMissing()
    return send_file(path, mimetype="text/javascript", max_age=3600)


def modules_dir() -> str:
    """The npm modules folder: configured, or web/node_modules beside the package."""
    configured = current_app.config["WEB_MODULES_DIR"]
    if configured:
        return os.path.abspath(configured)
    project = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return os.path.join(project, "web", "node_modules")
