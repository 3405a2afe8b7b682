"""The OMniLeads-compatible REST server.

Kept import-light so the CLI can monkey-patch with gevent before Flask, SQLAlchemy or
requests import `socket`, `ssl` or `threading`.
"""


def create_app(*args, **kwargs):
    from .app import create_app as _create_app
    return _create_app(*args, **kwargs)
