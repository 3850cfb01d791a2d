"""gunicorn settings for uploadsvc; every value can be overridden from the environment."""
import multiprocessing
import os
import shutil
import tempfile

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
# The workers size their database pools to their threads (core/database.py): tell them.
os.environ["GUNICORN_THREADS"] = str(threads)

# A worker that stops heart-beating for this long is restarted. With gthread the heartbeat
# runs beside requests, so a slow 100 MiB chunk does not trip it.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 120))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", 60))
# Seconds an idle keep-alive connection stays open. Browsers, tus clients and
# requests.Session send request after request on one connection, and a client may hash or
# wait for a while between them: gunicorn's default of 5 s closed such connections under
# clients mid-upload. 75 s is nginx's own default (keepalive_timeout). gthread keeps idle
# connections in its poller, not in a thread, so they cost a file descriptor each.
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", 75))

accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")
access_log_format = '%(h)s "%(r)s" %(s)s %(B)s %(M)sms "%(a)s"'

# gunicorn's control socket defaults to one path per user, which several servers on one host
# would fight over: only open it where one is asked for.
control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET", "")
control_socket_disable = not control_socket

# UPLOADSVC_LOG_FORMAT=json: gunicorn's access and error lines as JSON too, like the app's.
if os.environ.get("UPLOADSVC_LOG_FORMAT", "").lower() == "json":
    from uploadsvc.core.logs import gunicorn_config

    logconfig_dict = gunicorn_config(loglevel)

# Prometheus metrics across workers: each process writes its values to files in this
# directory and /metrics adds them up. Unless PROMETHEUS_MULTIPROC_DIR names one, each server
# run gets its own, removed on exit.
METRICS_DIR_PREFIX = "uploadsvc-metrics-"
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix=METRICS_DIR_PREFIX)


def on_starting(server):
    """Start the metrics from zero: files of an earlier run would be added to this one's."""
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        if name.endswith(".db"):
            os.unlink(os.path.join(directory, name))


def child_exit(server, worker):
    """Drop the live gauges of a worker that exited; its counters keep counting."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    """Remove the metrics directory this configuration made for the run (not one you set)."""
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    if os.path.basename(directory).startswith(METRICS_DIR_PREFIX):
        shutil.rmtree(directory, ignore_errors=True)


def post_fork(server, worker):
    """Keep a worker's resident memory near what it uses (see docs/performance.md)."""
    from uploadsvc.core.memory import tune_malloc

    tune_malloc()
