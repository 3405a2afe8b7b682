"""WSGI entry for gunicorn with gevent workers:

    gunicorn -k gevent -w 4 -b 127.0.0.1:8000 wsgi:app

Monkey-patching comes first, before anything imports socket, ssl or threading. gunicorn's
gevent worker patches too; doing it here keeps `python -c 'import wsgi'` honest. The ARI engine
does not run in API workers (one engine per Asterisk app: run `oml-server engine`).
"""
from gevent import monkey

monkey.patch_all()

from oml_server import create_app  # noqa: E402

app = create_app()

if app.config["ARI_ENABLED"]:
    from ari_engine.runner import install_backend  # noqa: E402

    install_backend(app)
