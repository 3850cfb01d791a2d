"""gunicorn settings for uploadsvc; every value can be overridden from the environment."""
import multiprocessing
import os

wsgi_app = "wsgi:app"
bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '3000')}"

# Threads let one worker keep several slow uploads moving; processes use every core.
# gthread rather than gevent/eventlet: merging and fsync are long blocking file I/O and
# SQLite calls block in C, which would stall every greenlet of a worker. Slow clients are
# handled instead by the app's body timeouts (UPLOADSVC_BODY_TIMEOUT, BODY_MIN_RATE) and by
# gunicorn 27 keeping idle and not-yet-readable connections out of the thread pool.
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", min(2 * multiprocessing.cpu_count() + 1, 8)))
threads = int(os.environ.get("GUNICORN_THREADS", 8))

# A worker that stops heart-beating for this long is restarted. With gthread the heartbeat
# runs beside requests, so a slow 100 MiB chunk does not trip it.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 120))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", 60))
keepalive = 5

accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")
access_log_format = '%(h)s "%(r)s" %(s)s %(B)s %(M)sms "%(a)s"'

# gunicorn's control socket defaults to one path per user, which several servers on one host
# would fight over: only open it where one is asked for.
control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET", "")
control_socket_disable = not control_socket
