"""Trust X-Forwarded-* from a configured number of reverse proxies (TRUSTED_PROXIES)."""
from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix


def init_app(app: Flask) -> None:
    """Behind nginx, make URLs the app builds (tus Location) name the public address."""
    hops = int(app.config["TRUSTED_PROXIES"])
    app.config["TRUSTED_PROXIES"] = hops
    if hops > 0:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops,
                                x_port=hops, x_prefix=hops)
