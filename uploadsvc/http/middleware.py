"""The WSGI middlewares around the Flask app, in their one order."""
from collections.abc import Callable

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from .socketbody import SocketBodies
from .timeouts import BodyTimeouts


def trusted_proxies(app: Flask, wsgi_app):
    """Behind nginx, trust X-Forwarded-* from TRUSTED_PROXIES hops, so that the URLs the
    app builds (tus Location) name the public address."""
    hops = int(app.config["TRUSTED_PROXIES"])
    app.config["TRUSTED_PROXIES"] = hops
    if hops <= 0:
        return wsgi_app
    return ProxyFix(wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops,
                    x_prefix=hops)


def body_timeouts(app: Flask, wsgi_app):
    """Cut off bodies that stall or trickle (BODY_TIMEOUT, BODY_MIN_RATE)."""
    config = app.config
    if not config["BODY_TIMEOUT"]:
        return wsgi_app
    return BodyTimeouts(wsgi_app, float(config["BODY_TIMEOUT"]), float(config["BODY_MIN_RATE"]))


def socket_bodies(app: Flask, wsgi_app):
    """Read large bodies straight from gunicorn's socket; outside the body timeouts, which
    then wrap the SocketBody."""
    return SocketBodies(wsgi_app)


# Innermost first: a request passes through them from the last to the first.
MIDDLEWARES: list[Callable] = [trusted_proxies, body_timeouts, socket_bodies]


def install(app: Flask) -> None:
    for wrap in MIDDLEWARES:
        app.wsgi_app = wrap(app, app.wsgi_app)
