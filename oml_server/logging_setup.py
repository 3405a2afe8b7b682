"""The one logging setup of every process (`oml-server run`, `oml-server engine`, wsgi.py).

`LOG_LEVEL` (default INFO) and `LOG_FORMAT`: `text` (default, for people) or `json` (one JSON
object per line, for machines). Values passed with `extra=` (the request log's method, path,
status and ms; the engine's call fields) become fields of the JSON object.
"""
import datetime
import json
import logging
import os
import sys

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# What every LogRecord has: the rest was passed with `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record):
        out = {"time": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
               .isoformat(timespec="milliseconds"),
               "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


class BadLogSetting(ValueError):
    """LOG_LEVEL or LOG_FORMAT has a value this module does not know."""


def configure(env=None, stream=None):
    """Send every logger's records at LOG_LEVEL and above to `stream` (stderr) in LOG_FORMAT."""
    env = os.environ if env is None else env
    level = (env.get("LOG_LEVEL") or "INFO").strip().upper()
    form = (env.get("LOG_FORMAT") or "text").strip().lower()
    if level not in LEVELS:
        raise BadLogSetting(f"LOG_LEVEL must be one of {', '.join(LEVELS)}, not {level!r}")
    if form not in ("text", "json"):
        raise BadLogSetting(f"LOG_FORMAT must be text or json, not {form!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if form == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Alembic announces each of its plugins at INFO whenever it is imported (every start).
    logging.getLogger("alembic.runtime.plugins").setLevel(max(root.level, logging.WARNING))
