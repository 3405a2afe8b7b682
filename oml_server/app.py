"""The OMniLeads-compatible REST server: the application factory."""
import os

from flask import Flask, request, send_from_directory
from flask.json.provider import DefaultJSONProvider
from flask.sessions import SecureCookieSessionInterface
from babel import Locale
from flask_babel import LazyString, get_locale, refresh
from werkzeug.middleware.proxy_fix import ProxyFix

from . import config as config_module
from . import messages as M
from . import errors
from .extensions import api, babel, db, jwt, migrate
from .request_log import RequestLog

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


class JSONProvider(DefaultJSONProvider):
    """Renders lazy (translated) strings in the request's language; keeps key order."""
    sort_keys = False
    ensure_ascii = False

    _translated = {}   # (id of a message, locale) -> (the message, its text)

    @classmethod
    def default(cls, o):
        if isinstance(o, LazyString):
            if o._kwargs:   # built per use, with its values: not worth keeping
                return str(o)
            # A message's text per language, kept: each gettext looks up the app, the domain
            # and the catalog (bench/README.md, new_contact's CPU). By id: a LazyString's own
            # hash translates it. The message is kept too, so its id is never reused.
            key = (id(o), get_locale())
            known = cls._translated.get(key)
            if known is None or known[0] is not o:
                if len(cls._translated) >= 10000:
                    cls._translated.clear()
                known = cls._translated[key] = (o, str(o))
            return known[1]
        return DefaultJSONProvider.default(o)


class TrailingSlash:
    """Serve every contract path with and without its trailing slash, with no redirect (OML
    answers 301 and the client's POST body is lost). Routes are declared with the slash; a path
    that lacks it gets it before routing, so a wrong method is a 405 either way."""
    PREFIXES = ("/api/", "/accounts/", "/agente/")

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith(self.PREFIXES) and not path.endswith("/"):
            environ["PATH_INFO"] = path + "/"
        return self.wsgi_app(environ, start_response)


def cookie_secure():
    """Cookies are `Secure` when configured so, or when this request came over HTTPS (behind a
    proxy that is only known through X-Forwarded-Proto when TRUSTED_PROXIES says to trust it)."""
    from flask import current_app
    return bool(current_app.config["SESSION_COOKIE_SECURE"]) or request.is_secure


class SessionInterface(SecureCookieSessionInterface):
    def get_cookie_secure(self, app):
        return cookie_secure()

    def open_session(self, app, request):
        # API clients send no session cookie: an empty session then, without building the
        # cookie's signing serializer on every request (Flask's does; ~3% of new_contact's CPU).
        # No Cookie header at all (API clients): not even the cookies parsed.
        if app.secret_key and (not request.environ.get("HTTP_COOKIE")
                               or not request.cookies.get(self.get_cookie_name(app))):
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app, session, response):
        # Untouched and empty (every API request): nothing to write, no Vary header; Flask's
        # would still work out the cookie's six settings first.
        if not session and not session.modified and not session.accessed:
            return
        super().save_session(app, session, response)


_locale_choices = {}


def select_locale():
    from flask import current_app, has_request_context
    config = current_app.config
    if not has_request_context():  # CLI, engine: the configured default language
        return config["BABEL_DEFAULT_LOCALE"]
    # Clients send the same few Accept-Language values: remember each one's choice rather
    # than parse it on every request (bounded: emptied when full).
    key = (request.headers.get("Accept-Language"), tuple(config["LANGUAGES"]),
           config["BABEL_DEFAULT_LOCALE"])
    choice = _locale_choices.get(key)
    if choice is None:
        # As a Locale, which flask_babel's Locale.parse hands back as is (it parsed the name
        # again on every request).
        choice = Locale.parse(request.accept_languages.best_match(key[1]) or key[2])
        if len(_locale_choices) >= 1000:
            _locale_choices.clear()
        _locale_choices[key] = choice
    return choice


class OmlFlask(Flask):
    def ensure_sync(self, func):
        """Flask's, remembered per function: it asks `inspect` whether each before/after
        request function and view is a coroutine function on every request (~10 calls)."""
        known = self.__dict__.setdefault("_oml_sync", {})
        sync = known.get(func)
        if sync is None:
            sync = known[func] = super().ensure_sync(func)
        return sync


def create_app(overrides=None, env=None):
    app = OmlFlask("oml_server", instance_relative_config=True)
    app.json = JSONProvider(app)
    app.config.update(config_module.load(env, app.instance_path))
    app.config.update(overrides or {})
    app.config.setdefault("JWT_SECRET_KEY", app.config["SECRET_KEY"])
    config_module.check_secrets(app.config)
    app.url_map.strict_slashes = False
    app.wsgi_app = TrailingSlash(app.wsgi_app)
    proxies = app.config.get("TRUSTED_PROXIES", 0)
    if proxies:  # only then X-Forwarded-For/-Proto decide the client address and the scheme
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=0)
    app.wsgi_app = RequestLog(app.wsgi_app)  # outermost: every answer, the path as sent
    app.session_interface = SessionInterface()
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///"):
        os.makedirs(app.instance_path, exist_ok=True)

    db.init_app(app)
    migrate.init_app(app, db, directory=os.path.join(os.path.dirname(__file__), "migrations"),
                     render_as_batch=True)
    jwt.init_app(app)
    babel.init_app(app, locale_selector=select_locale,
                   default_translation_directories=os.path.join(os.path.dirname(__file__), "translations"))
    api.init_app(app)
    api.spec.components.security_scheme(
        "bearer", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})

    with app.app_context():
        from . import database
        database.configure_engine(db.engine)

    from .blueprints import register_blueprints
    register_blueprints(app, api)
    errors.register(app)  # after flask-smorest, so the contract's error shapes win

    @app.before_request
    def _fresh_locale():
        refresh()  # the locale is cached on the app context, which tests share across requests

    @app.before_request
    def _refuse_nul_in_paths():
        # No resource has a NUL in its name, and PostgreSQL refuses it in a query: 404 now.
        if "\x00" in request.path:
            raise errors.not_found()

    @app.before_request
    def _refuse_huge_bodies():
        # Refused on the declared length, before authentication and before a byte is read.
        # (Without a Content-Length, Werkzeug stops reading at MAX_CONTENT_LENGTH: also 413.)
        limit = app.config.get("MAX_CONTENT_LENGTH")
        if limit and request.content_length is not None and request.content_length > limit:
            raise errors.Detail(413, M.BODY_TOO_LARGE)

    @app.after_request
    def _headers(response):
        response.headers["Content-Language"] = str(get_locale() or app.config["BABEL_DEFAULT_LOCALE"])
        # One pass over the headers (Headers.setdefault scans them once per name).
        present = {name.lower() for name, _ in response.headers}
        response.headers.extend([(name, value) for name, value in SECURITY_HEADERS.items()
                                 if name.lower() not in present])
        return response

    try:
        import swagger_ui_bundle
        swagger_dir = swagger_ui_bundle.swagger_ui_path

        @app.route("/swagger-ui/<path:filename>")
        def _swagger_static(filename):
            return send_from_directory(swagger_dir, filename)
    except ImportError:  # /docs then needs SWAGGER_UI_URL pointed elsewhere
        pass

    from .cli import register_commands
    register_commands(app)
    return app
