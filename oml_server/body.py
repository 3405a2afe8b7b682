"""Reads a request body the way OMniLeads clients send it: JSON or form-encoded.

Returns a plain dict of the top-level fields. A body that cannot be read raises
`BodyError`; each endpoint turns that into its own error style (contract §1.6).
"""
import json

from flask import request

from . import messages as M


class BodyError(Exception):
    def __init__(self, message):
        super().__init__(str(message))
        self.message = message


def read_body(error_style=None):
    """The request's fields as a dict; {} for an empty body.

    `error_style(message)` builds the endpoint's own error for a body that cannot be read;
    without it BodyError is raised."""
    if error_style is None:
        return _read()
    try:
        return _read()
    except BodyError as exc:
        raise error_style(exc.message)


def _read():
    mimetype = request.mimetype or ""
    raw = request.get_data(cache=True)
    if not raw:
        return {}
    if mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return _without_nul({key: request.form.get(key) for key in request.form.keys()})
    if mimetype == "application/json" or mimetype.endswith("+json") or mimetype == "":
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BodyError(M.MALFORMED_BODY % {"error": "invalid UTF-8"})
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise BodyError(M.MALFORMED_BODY % {"error": str(exc)[:120]})
        if not isinstance(data, dict):
            raise BodyError(M.MALFORMED_BODY % {"error": "expected an object"})
        return _without_nul(data)
    raise BodyError(M.UNSUPPORTED_MEDIA % {"media_type": mimetype})


def _without_nul(data):
    """`data`, unless a key or a string value (at any depth) holds a NUL character: no text
    column can store one (PostgreSQL refuses it outright), so such a body is unreadable."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise BodyError(M.MALFORMED_BODY % {"error": "NUL character in a string"})
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return data
