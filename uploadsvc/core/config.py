"""Default configuration; every key can be overridden, see README's configuration table."""

MiB = 1024**2
GiB = 1024**3


class DefaultConfig:
    # Where temp/, chunks/, locks/ and uploads/ live; None means the instance folder.
    DATA_DIR = None
    # None keeps every byte in the data directory; s3://BUCKET/PREFIX keeps uploads' bytes
    # and finished files in that bucket (docs/scaleout.md), the endpoint and credentials
    # from boto3's standard variables (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...);
    # azure://CONTAINER/PREFIX in that Azure container (AZURE_STORAGE_CONNECTION_STRING,
    # or AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN);
    # gs://BUCKET/PREFIX in that GCS bucket (GOOGLE_APPLICATION_CREDENTIALS or application
    # default credentials, GOOGLE_CLOUD_PROJECT, STORAGE_EMULATOR_HOST). The
    # S3_TIMEOUT, S3_ORPHAN_AGE and S3_PRESIGNED_DOWNLOADS below apply to every object store.
    STORAGE_URL = None
    # "path" or "virtual"; empty: path-style with an endpoint of one's own, else boto3's.
    S3_ADDRESSING_STYLE = ""
    # Seconds to connect to the object store and to wait for each answer; then 503.
    S3_TIMEOUT = 30.0
    # Parts streamed to the object store (PATCH bodies, small chunks joined), at least 5 MiB.
    S3_PART_SIZE = 16 * MiB
    # Every part but the last of exactly S3_PART_SIZE (stores such as Cloudflare R2 want it).
    S3_EQUAL_PARTS = False
    # The most parts one multipart upload may have: S3's 10,000, or a store's own lower limit.
    # Joins of more pieces go in rounds of this many.
    S3_MAX_PARTS = 10_000
    # `flask cleanup` removes objects and multipart uploads under the prefix that no upload
    # owns only once they are this old, so that no host takes what a request on another uses.
    S3_ORPHAN_AGE = "1d"
    # Seconds a presigned download URL is valid (or 15m, 1h); 0 streams downloads from the
    # bucket through the app. On, a GET of a finished file redirects (307) to the store.
    S3_PRESIGNED_DOWNLOADS = 0
    # None means SQLite in the data directory; a mysql+pymysql:// URL selects MySQL.
    DATABASE_URL = None
    # MySQL only (docs/deployment.md, "Running on MySQL or MariaDB"): connections per worker (None:
    # GUNICORN_THREADS, at least 4), extra ones for bursts (None: as many), seconds before a
    # connection is replaced (below the server's wait_timeout), the isolation level.
    DATABASE_POOL_SIZE = None
    DATABASE_MAX_OVERFLOW = None
    DATABASE_POOL_RECYCLE = 1800
    DATABASE_ISOLATION_LEVEL = "READ COMMITTED"
    CORS_ORIGINS = "http://localhost:5173,http://localhost:4174,http://localhost:3000"
    # An unfinished upload with no new chunk for this long is removed by `flask cleanup`.
    UPLOAD_EXPIRY = "24h"
    MAX_FILE_SIZE = 10 * GiB
    MAX_TOTAL_CHUNKS = 100_000
    # How long complete-upload, a chunk or DELETE waits for a running merge of the same
    # upload before answering 409 merge_in_progress.
    LOCK_WAIT_SECONDS = 10.0
    # How long a lock's lease in the database lasts unless its holder renews it (a thread in
    # each process does, every third of it): what a host that dies mid-request holds at most.
    LEASE_SECONDS = 30.0
    # When bytes reach the disk: True, every chunk and tus PATCH before it is acknowledged;
    # "complete", only finished files before they are reported complete (an acknowledged
    # chunk survives any process crash but not a machine crash; completion then finds it
    # missing and the client sends it again); False, never (throw-away data only).
    FSYNC = True
    # Threads per worker process for the work after an answer (hashing what arrived,
    # removing a finished upload's bytes), beside the request threads; 0 runs it on the
    # connection after the answer, holding up that connection's next request.
    BACKGROUND_THREADS = 2
    # JSON bodies (check-chunks, complete-upload) are tiny; refuse anything larger.
    MAX_JSON_BODY = 64 * 1024
    JSON_SORT_KEYS = False
    # Prometheus metrics at /metrics (off: 404); with a token, scrapers must send it as
    # "Authorization: Bearer <token>".
    METRICS = True
    METRICS_TOKEN = None
    # Logs go to stdout: "text" for people, "json" (one object a line) for log shippers.
    LOG_FORMAT = "text"
    LOG_LEVEL = "INFO"
    # Serve completed files at their `path` (/uploads/<stored name>); False answers 404.
    DOWNLOADS = True
    # The original server's operator endpoints (/api/uploads/history, /api/database/stats,
    # /api/logs): they name every user's files, so off by default (unknown routes, 404).
    ADMIN_API = False
    # Serve the upload page at / (and its scripts); False answers 404.
    UPLOAD_PAGE = True
    # npm modules folder of the page's browser libraries; None means web/node_modules.
    WEB_MODULES_DIR = None
    # tus 1.0 endpoint (docs/tus.md): its URL prefix; the base URL that Location headers
    # start with (None: the address the request came to); how long an unfinished tus
    # upload lives after its last write (None: UPLOAD_EXPIRY).
    TUS_PREFIX = "/files"
    TUS_BASE_URL = None
    TUS_EXPIRY = None
    # Reverse proxies in front whose X-Forwarded-For/-Proto/-Host/-Port/-Prefix are trusted
    # (0: none). Set it to 1 behind one nginx so that Location names the public address.
    TRUSTED_PROXIES = 0
    # IETF resumable upload draft (docs/resumable.md): send the 104 Upload Resumption
    # Supported interim answer on creations. Off behind nginx, which takes a 104 from its
    # upstream for the final answer.
    RESUMABLE_INTERIM = True

    # -- hostile input, limits and access control (docs/security.md) --
    # Bearer API keys (`flask keys create NAME`); off so that existing front ends keep working.
    AUTH_REQUIRED = False
    # Largest chunk, refused (413) by Content-Length before parsing and while spooling.
    MAX_CHUNK_SIZE = 100 * MiB
    # Unfinished uploads allowed at once, per client (API key, else remote address) and in
    # all; 0 means no limit. New uploads beyond are refused with 429.
    MAX_ACTIVE_UPLOADS_PER_CLIENT = 1000
    MAX_ACTIVE_UPLOADS = 100_000
    # A request body that pauses longer than this (seconds), or arrives slower than
    # BODY_MIN_RATE bytes/s once this long has passed, is cut off with 408.
    BODY_TIMEOUT = 30
    BODY_MIN_RATE = 1024
    # Flask-Limiter rate limit per client, e.g. "600/minute;20/second"; empty means none.
    # memory:// counts per worker process; use redis:// or memcached:// for all workers.
    RATE_LIMIT = ""
    RATE_LIMIT_STORAGE_URI = "memory://"

    # -- telling other systems (docs/hooks.md) --
    # Webhooks: comma-separated endpoints that get every upload event as a signed POST (empty:
    # none), which events ("all", or a list of created, completed, verification_failed,
    # deleted, expired), and the secret their HMAC-SHA256 signature is made with.
    HOOK_URLS = ""
    HOOK_EVENTS = "all"
    HOOK_SECRET = None
    # Who delivers: "auto", a thread in each gunicorn worker; true, also under `flask run`
    # and the CLI; false, only `flask hooks deliver` (cron, systemd).
    HOOK_DELIVERER = "auto"
    # Seconds one delivery may take; how long a deliverer owns an event it is sending (one
    # killed mid-send leaves it to another after this); how often idle deliverers look for
    # events; the first retry's delay (doubled per attempt, with jitter, up to an hour); how
    # long an event is retried before it is marked failed.
    HOOK_TIMEOUT = 10
    HOOK_LEASE = "60s"
    HOOK_POLL_INTERVAL = 1.0
    HOOK_RETRY_DELAY = "10s"
    HOOK_RETRY_FOR = "24h"
    # Pre-create hook: asked before a new upload is created; a non-2xx answer refuses it
    # (403). Seconds it may take; when it fails or times out, "closed" refuses, "open" admits.
    PRE_CREATE_HOOK_URL = None
    PRE_CREATE_HOOK_TIMEOUT = 3
    PRE_CREATE_HOOK_FAIL = "closed"
    # How long chunk-level upload events are kept; `flask cleanup` folds older ones into daily
    # totals (so `flask stats` keeps its all-time figures) and drops delivered webhook events.
    EVENT_RETENTION = "30d"
