"""Configuration from environment variables.

Secrets fail closed: SECRET_KEY, SIP_SECRET_KEY and ARI_PASSWORD (the last only with ARI
enabled) must be set, and to something other than the development values in this repository,
unless development is asked for explicitly with `OML_ENV=development`. Anyone can read those
values here: a server signing tokens with one would let anyone mint an Administrador token.
`make run` generates real ones (oml_server/secrets_file.py).
"""
import os

DEV_SECRET_KEY = "dev-token-signing-secret-change-me"
DEV_SIP_SECRET_KEY = "dev-sip-secret-change-me"
DEV_ARI_PASSWORD = "oml-lab-secret"


DEVELOPMENT_VALUES = {"SECRET_KEY": DEV_SECRET_KEY, "SIP_SECRET_KEY": DEV_SIP_SECRET_KEY,
                      "ARI_PASSWORD": DEV_ARI_PASSWORD}


class InsecureConfiguration(RuntimeError):
    """A secret is missing or has its public development value, and development was not asked for."""


def _int(env, name, default):
    value = env.get(name)
    return int(value) if value not in (None, "") else default


def flag(env, name, default=False):
    """A yes/no setting (or query parameter) of mapping `env`: 1/true/yes/on, else no."""
    value = env.get(name)
    if value in (None, ""):
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def load(env=None, instance_path=None):
    """Build the Flask config mapping from `env` (os.environ by default)."""
    env = os.environ if env is None else env
    instance_path = instance_path or os.path.join(os.getcwd(), "instance")
    default_db = "sqlite:///" + os.path.join(instance_path, "oml.sqlite3")
    development = env.get("OML_ENV") == "development"

    def secret(name):  # the development value only when development was asked for
        return env.get(name) or (DEVELOPMENT_VALUES[name] if development else None)

    token_ttl = _int(env, "TOKEN_EXPIRED_AFTER_SECONDS", 32400)
    cfg = {
        "OML_ENV": env.get("OML_ENV") or "production",
        "SECRET_KEY": secret("SECRET_KEY"),  # JWT_SECRET_KEY follows it (app.create_app)
        "JWT_ALGORITHM": "HS256",
        "JWT_DECODE_ALGORITHMS": ["HS256"],
        "TOKEN_EXPIRED_AFTER_SECONDS": token_ttl,
        "SQLALCHEMY_DATABASE_URI": env.get("DATABASE_URL", default_db),
        "BABEL_DEFAULT_LOCALE": env.get("DEFAULT_LANGUAGE", "es"),
        "LANGUAGES": ["es", "en"],
        "PASSWORD_HASH_METHOD": env.get("PASSWORD_HASH_METHOD", "scrypt"),
        "SIP_SECRET_KEY": secret("SIP_SECRET_KEY"),
        "EPHEMERAL_USER_TTL": _int(env, "EPHEMERAL_USER_TTL", 28800),
        "ARI_URL": env.get("ARI_URL", "http://127.0.0.1:8088/ari"),
        "ARI_USER": env.get("ARI_USER", "oml"),
        "ARI_PASSWORD": secret("ARI_PASSWORD"),
        "ARI_APP": env.get("ARI_APP", "omnileads"),
        "ARI_ENABLED": flag(env, "ARI_ENABLED", True),
        "DIAL_TEMPLATE": env.get("DIAL_TEMPLATE", "PJSIP/{number}@trunk"),
        "AGENT_ANSWER_TIMEOUT": _int(env, "AGENT_ANSWER_TIMEOUT", 25),
        "CONTACT_ANSWER_TIMEOUT": _int(env, "CONTACT_ANSWER_TIMEOUT", 45),
        "INBOUND_WAIT_SECONDS": _int(env, "INBOUND_WAIT_SECONDS", 60),
        # Agent console heartbeat (contract-calls §5): beats every NEXT seconds; an agent whose
        # consoles stop beating for TIMEOUT is UNAVAILABLE (not offered calls).
        # Recordings (campaigns with `record`): the folder Asterisk writes ARI recordings to
        # (its astspooldir/recording; shared with this server when they run on different
        # machines, see README), the format Asterisk writes, and where bulk-download zips go.
        "RECORDINGS_DIR": env.get("RECORDINGS_DIR", "/var/spool/asterisk/recording"),
        "RECORDING_FORMAT": env.get("RECORDING_FORMAT", "wav"),
        "RECORDINGS_ZIP_DIR": env.get("RECORDINGS_ZIP_DIR", ""),
        # campaign/<id>/contacts/: how long a campaign's pending-contacts total is reused.
        "PRESENCE_HEARTBEAT_TIMEOUT_SEC": _int(env, "PRESENCE_HEARTBEAT_TIMEOUT_SEC", 60),
        "PRESENCE_HEARTBEAT_NEXT_SEC": _int(env, "PRESENCE_HEARTBEAT_NEXT_SEC", 15),
        # seconds a transfer's target rings before the caller goes back (issue 9)
        "TRANSFER_TIMEOUT": _int(env, "TRANSFER_TIMEOUT", 20),
        # A phone that vanishes without a BYE (network lost, laptop closed) sends no more RTP:
        # Asterisk hangs its channel up after this many silent seconds (pushed as the agents'
        # and supervisors' endpoints' rtp_timeout; 0: never) and the call ends as a hang-up.
        # Phones send RTP all the time, silence included; the HOLD figure applies while the
        # phone itself holds the call (it may send nothing then).
        "PHONE_RTP_TIMEOUT": _int(env, "PHONE_RTP_TIMEOUT", 60),
        "PHONE_RTP_TIMEOUT_HOLD": _int(env, "PHONE_RTP_TIMEOUT_HOLD", 600),
        # The agent console's phone: SIP over WebSocket (default: ws:// next to ARI_URL; in
        # production a wss:// URL behind TLS), its SIP domain, and where JsSIP was bundled.
        "CONSOLE_SIP_WS_URL": env.get("CONSOLE_SIP_WS_URL", ""),
        "CONSOLE_SIP_DOMAIN": env.get("CONSOLE_SIP_DOMAIN", ""),
        "CONSOLE_VENDOR_DIR": env.get("CONSOLE_VENDOR_DIR", ""),
        "MAX_CONTENT_LENGTH": _int(env, "MAX_CONTENT_LENGTH", 1024 * 1024),
        # Django's name: OMniLeads' own console scripts log in and read `sessionid` (§1.3).
        "SESSION_COOKIE_NAME": "sessionid",
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": flag(env, "SESSION_COOKIE_SECURE", False),
        "PREFERRED_URL_SCHEME": env.get("PREFERRED_URL_SCHEME", "http"),
        # Behind N reverse proxies, trust their X-Forwarded-For/-Proto (0: trust no header).
        "TRUSTED_PROXIES": _int(env, "TRUSTED_PROXIES", 0),
        # Abuse limits (services/throttle.py).
        "LOGIN_WINDOW_SECONDS": _int(env, "LOGIN_WINDOW_SECONDS", 900),
        "LOGIN_SLOW_AFTER": _int(env, "LOGIN_SLOW_AFTER", 3),
        "LOGIN_MAX_FAILURES": _int(env, "LOGIN_MAX_FAILURES", 5),
        "LOGIN_MAX_FAILURES_PER_ADDRESS": _int(env, "LOGIN_MAX_FAILURES_PER_ADDRESS", 20),
        "LOGIN_SLOW_AFTER_PER_USER": _int(env, "LOGIN_SLOW_AFTER_PER_USER", 10),
        "LOGIN_SLOWDOWN_SECONDS": float(env.get("LOGIN_SLOWDOWN_SECONDS") or 1.0),
        "MAKECALL_MAX_PER_WINDOW": _int(env, "MAKECALL_MAX_PER_WINDOW", 10),
        "MAKECALL_WINDOW_SECONDS": _int(env, "MAKECALL_WINDOW_SECONDS", 60),
        # flask-smorest / OpenAPI
        "API_TITLE": "OMniLeads-compatible REST API",
        "API_SPEC_OPTIONS": {"security": [{"bearer": []}]},  # login and health opt out
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/",
        "OPENAPI_JSON_PATH": "openapi.json",
        "OPENAPI_SWAGGER_UI_PATH": "/docs",
        "OPENAPI_SWAGGER_UI_URL": "/swagger-ui/",  # served from the swagger-ui-bundle package
    }
    cfg["SQLALCHEMY_DATABASE_URI"] = normalize_database_url(cfg["SQLALCHEMY_DATABASE_URI"])
    cfg["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(env, cfg["SQLALCHEMY_DATABASE_URI"])
    # PostgreSQL plans the hot statements once per connection (database.Prepared); 0 behind
    # a pooler in transaction mode, where a session's PREPARE is not seen by the next.
    cfg["DB_PREPARED_STATEMENTS"] = flag(env, "DB_PREPARED_STATEMENTS", True)
    # Connections to ARI (one per concurrent request to Asterisk; more wait their turn).
    cfg["ARI_POOL_SIZE"] = _int(env, "ARI_POOL_SIZE", 50)
    # The engine (ari_engine/runner.py): the Asterisk node it drives (kept on every call and
    # leg), how often it sweeps rows against Asterisk and beats its heartbeat, how long a quiet
    # call's worker waits before leaving the call to its rows, and how young a leg the sweep
    # leaves alone (its originate may still be on its way).
    cfg["ASTERISK_NODE"] = env.get("ASTERISK_NODE", "local")
    cfg["ENGINE_SWEEP_SECONDS"] = float(env.get("ENGINE_SWEEP_SECONDS") or 30)
    cfg["ENGINE_HEARTBEAT_SECONDS"] = float(env.get("ENGINE_HEARTBEAT_SECONDS") or 5)
    cfg["ENGINE_IDLE_SECONDS"] = float(env.get("ENGINE_IDLE_SECONDS") or 600)
    cfg["PASSWORD_HASH_THREADS"] = _int(env, "PASSWORD_HASH_THREADS", 1)
    cfg["PASSWORD_HASHER"] = env.get("PASSWORD_HASHER") or "process"   # or "thread"
    cfg["ARI_EVENT_LOG"] = env.get("ARI_EVENT_LOG", "")
    cfg["SWEEP_GRACE_SECONDS"] = float(env.get("SWEEP_GRACE_SECONDS") or 5)
    # CRM deliveries (webhooks, external sites): kept trying this long, backoff from BASE
    # doubling up to MAX seconds, this many requests at once per destination, per-request
    # timeout, and how often the outbox and the due rows are looked at.
    cfg["DELIVERY_ENABLED"] = flag(env, "DELIVERY_ENABLED", True)
    cfg["CRM_RETRY_HOURS"] = float(env.get("CRM_RETRY_HOURS") or 24)
    cfg["CRM_RETRY_BASE_SECONDS"] = float(env.get("CRM_RETRY_BASE_SECONDS") or 2)
    cfg["CRM_RETRY_MAX_SECONDS"] = float(env.get("CRM_RETRY_MAX_SECONDS") or 600)
    cfg["CRM_CONCURRENCY"] = _int(env, "CRM_CONCURRENCY", 4)
    cfg["CRM_TIMEOUT_SECONDS"] = float(env.get("CRM_TIMEOUT_SECONDS") or 10)
    cfg["DELIVERY_POLL_SECONDS"] = float(env.get("DELIVERY_POLL_SECONDS") or 0.2)
    # Retention (services/prune.py): events and finished deliveries older than this many days
    # are removed (0 keeps them), by `oml-server prune` and every PRUNE_INTERVAL_SECONDS by each
    # process that runs the delivery greenlets.
    cfg["EVENTS_RETENTION_DAYS"] = float(env.get("EVENTS_RETENTION_DAYS") or 30)
    cfg["DELIVERIES_RETENTION_DAYS"] = float(env.get("DELIVERIES_RETENTION_DAYS") or 30)
    cfg["PRUNE_INTERVAL_SECONDS"] = float(env.get("PRUNE_INTERVAL_SECONDS") or 3600)
    # The event stream: how often the outbox is polled, and the heartbeat comment's period.
    cfg["STREAM_POLL_SECONDS"] = float(env.get("STREAM_POLL_SECONDS") or 0.2)
    cfg["STREAM_HEARTBEAT_SECONDS"] = float(env.get("STREAM_HEARTBEAT_SECONDS") or 15)
    # poll (default) | notify: PostgreSQL LISTEN/NOTIFY wakes the stream, which then polls only
    # every STREAM_SAFETY_POLL_SECONDS (measured in bench/README.md; SQLite always polls).
    cfg["STREAM_WAKEUP"] = env.get("STREAM_WAKEUP") or "poll"
    cfg["STREAM_SAFETY_POLL_SECONDS"] = float(env.get("STREAM_SAFETY_POLL_SECONDS") or 5)
    return cfg


def engine_options(env, url):
    """SQLAlchemy engine options. PostgreSQL: connections are checked before use only when
    they sat idle (database.configure_engine) instead of a `SELECT 1` round trip on every
    check-out. The pool is small on purpose: a process opens at most 10 connections, and
    requests beyond that wait their turn in arrival order (FairQueuePool). With 30 (the former
    10 + 20 overflow) PostgreSQL ran up to 30 backends on the cores the server needs, and
    throughput fell by a third from 10 to 200 clients (bench/README.md, "the collapse").
    All 10 are kept once opened (no overflow): an overflow connection is closed as soon as it
    is handed back, so each burst that needed it paid a new backend and the preparing of every
    statement again (bench/README.md, "Eighth pass"). The sum over all processes must stay
    under PostgreSQL's max_connections (100 by default)."""
    if url.startswith("postgresql"):
        from .database import FairQueuePool   # waiters served in arrival order
        return {"poolclass": FairQueuePool,
                "pool_size": _int(env, "DB_POOL_SIZE", 10),
                "max_overflow": _int(env, "DB_MAX_OVERFLOW", 0),
                "pool_timeout": _int(env, "DB_POOL_TIMEOUT", 30),
                # The connection used last is taken first: at a few statements a second
                # (an idle server's polls, one call at a time) the same warm connection serves
                # them all instead of each check-out taking the longest idle one, which had
                # sat past PING_AFTER_IDLE_SECONDS and paid a `SELECT 1` first.
                "pool_use_lifo": True}
    return {"pool_pre_ping": True}


def normalize_database_url(url):
    """`postgres://` and `postgresql://` URLs use psycopg2 (SQLAlchemy 2.1 would pick psycopg 3)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix):]
    return url


def check_secrets(cfg):
    """Refuse to run with a missing secret or a development one, unless OML_ENV=development."""
    if cfg.get("OML_ENV") == "development":
        return
    needed = [name for name in DEVELOPMENT_VALUES
              if name != "ARI_PASSWORD" or cfg.get("ARI_ENABLED")]
    weak = [name for name in needed
            if not cfg.get(name) or cfg.get(name) == DEVELOPMENT_VALUES[name]]
    if weak:
        raise InsecureConfiguration(
            "refusing to start without real secrets: set " + ", ".join(weak) + " in the "
            "environment (long random values, e.g. `python3 -c 'import secrets; "
            "print(secrets.token_urlsafe(48))'`; `make run` generates them into "
            "instance/secrets.env), or OML_ENV=development to use the repository's public "
            "development values (never in production)")
