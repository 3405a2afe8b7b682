"""WSGI entry for gunicorn with gevent workers:

    gunicorn -k gevent -w 4 -b 127.0.0.1:8000 wsgi:app

Monkey-patching comes first, before anything imports socket, ssl or threading. gunicorn's
gevent worker patches too; doing it here keeps `python -c 'import wsgi'` honest. The ARI engine
does not run in API workers (one engine per Asterisk app: run `oml-server engine`).
"""
from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

from oml_server import create_app, logging_setup  # noqa: E402
from oml_server.config import InsecureConfiguration  # noqa: E402

try:
    logging_setup.configure()
    app = create_app()
except (InsecureConfiguration, logging_setup.BadLogSetting) as exc:
    print(f"oml-server: {exc}", file=sys.stderr)
    sys.exit(3)  # gunicorn's "worker failed to boot": the master stops instead of respawning

if app.config["ARI_ENABLED"]:
    from ari_engine.runner import install_backend  # noqa: E402

    install_backend(app)
