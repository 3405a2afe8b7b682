"""Domain errors and the one place that turns them, and every HTTP error, into contract JSON.

Services raise `ContractError(status, body)` with the exact body of contract §2; framework
failures (auth, role, 404, 405, 413) become `{"detail": ...}` like Django REST Framework's.
Nothing ever answers HTML or a bare 500.
"""
import logging

from flask import jsonify
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from werkzeug.exceptions import HTTPException

from . import messages as M

log = logging.getLogger(__name__)


class ContractError(Exception):
    """A failure with its exact contract body and HTTP status."""

    def __init__(self, status, body):
        super().__init__(status, body)
        self.status = status
        self.body = body
        self.headers = {}


class Detail(ContractError):
    """A framework-level failure: `{"detail": message}`."""

    def __init__(self, status, message):
        super().__init__(status, {"detail": message})


def forbidden(message):
    return Detail(403, message)


def not_found():
    return Detail(404, M.NOT_FOUND)


def business_error(status=400, **body):
    """`{"status": "ERROR", ...}` in the key order given."""
    return ContractError(status, {"status": "ERROR", **body})


def data_errors(errors, status=400):
    """The "There were errors on received data" body with its per-field errors."""
    return business_error(status, message=M.DATA_ERRORS, errors=errors)


def unreadable_as_data_errors(status=400):
    """The error style of the business endpoints for a body that cannot be read."""
    return lambda message: data_errors({"__all__": [message]}, status=status)


def _http_detail(exc):
    from flask import request
    if exc.code == 405:
        return M.METHOD_NOT_ALLOWED % {"method": request.method}
    if exc.code == 404:
        return M.NOT_FOUND
    if exc.code == 413:
        return M.BODY_TOO_LARGE
    return exc.description or exc.name


def register(app):
    @app.errorhandler(ContractError)
    def _contract(exc):
        return jsonify(exc.body), exc.status, exc.headers

    @app.errorhandler(HTTPException)
    def _http(exc):
        # flask-smorest/webargs attach their own payloads; the contract wants DRF's shape.
        response = jsonify({"detail": _http_detail(exc)})
        response.status_code = exc.code or 500
        if exc.code == 405 and getattr(exc, "valid_methods", None):
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(OperationalError)
    def _db_down(exc):
        log.warning("database unavailable: %s", exc.orig)
        _rollback()
        return jsonify({"detail": "Service temporarily unavailable."}), 503

    @app.errorhandler(SQLAlchemyError)
    def _db_error(exc):
        log.exception("database error")
        _rollback()
        return jsonify({"detail": "Internal server error."}), 500

    @app.errorhandler(Exception)
    def _unexpected(exc):
        log.exception("unhandled error")
        _rollback()
        return jsonify({"detail": "Internal server error."}), 500


def _rollback():
    from .extensions import db
    try:
        db.session.rollback()
    except Exception:  # the connection itself may be gone
        log.debug("rollback failed", exc_info=True)
