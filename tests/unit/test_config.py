"""Configuration: secrets fail closed (no development secret unless development is asked for)."""
import os
import socket
import stat
import subprocess
import sys
import time

import jwt as pyjwt
import pytest

from oml_server import config, secrets_file

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REAL = {"SECRET_KEY": "k" * 40, "SIP_SECRET_KEY": "s" * 40, "ARI_PASSWORD": "p" * 20}


def _env(tmp_path, **values):
    return {"DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite3", **values}


def test_nothing_set_refuses_and_says_what_to_set(tmp_path):
    from oml_server import create_app
    with pytest.raises(config.InsecureConfiguration) as info:
        create_app(env=_env(tmp_path))
    message = str(info.value)
    for name in ("SECRET_KEY", "SIP_SECRET_KEY", "ARI_PASSWORD", "OML_ENV=development"):
        assert name in message


@pytest.mark.parametrize("name", sorted(config.DEVELOPMENT_VALUES))
def test_a_development_value_set_explicitly_is_refused_too(tmp_path, name):
    from oml_server import create_app
    env = _env(tmp_path, **{**REAL, name: config.DEVELOPMENT_VALUES[name]})
    with pytest.raises(config.InsecureConfiguration) as info:
        create_app(env=env)
    assert f"set {name} " in str(info.value)


def test_real_secrets_start(tmp_path):
    from oml_server import create_app
    app = create_app(env=_env(tmp_path, **REAL))
    assert app.config["OML_ENV"] == "production"
    assert app.config["JWT_SECRET_KEY"] == REAL["SECRET_KEY"]


def test_without_ari_the_ari_password_is_not_needed(tmp_path):
    from oml_server import create_app
    env = _env(tmp_path, ARI_ENABLED="0", SECRET_KEY="k" * 40, SIP_SECRET_KEY="s" * 40)
    assert create_app(env=env).config["ARI_PASSWORD"] is None


def test_development_must_be_asked_for_and_then_uses_the_development_values(tmp_path):
    from oml_server import create_app
    app = create_app(env=_env(tmp_path, OML_ENV="development"))
    assert app.config["SECRET_KEY"] == config.DEV_SECRET_KEY
    assert app.config["ARI_PASSWORD"] == config.DEV_ARI_PASSWORD


def _token(user, key):
    now = int(time.time())
    return pyjwt.encode({"sub": str(user.id), "tv": user.token_version, "iat": now, "nbf": now,
                         "exp": now + 3600, "type": "access", "fresh": False,
                         "jti": "x"}, key, algorithm="HS256")


def test_a_token_signed_with_the_old_development_key_is_refused(client, make):
    agent = make.agent()
    forged = _token(agent, config.DEV_SECRET_KEY)
    response = client.get("/api/v1/disposition/", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 403
    assert response.get_json() == {"detail": "Invalid Token"}
    # The same claims signed with the server's own key do pass: it is the key that is refused.
    genuine = _token(agent, client.application.config["JWT_SECRET_KEY"])
    response = client.get("/api/v1/disposition/", headers={"Authorization": f"Bearer {genuine}"})
    assert response.status_code == 200


def _without_secrets():
    env = {k: v for k, v in os.environ.items()
           if k not in config.DEVELOPMENT_VALUES and k not in ("OML_ENV", "FLASK_APP")}
    return env


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("command", [
    [os.path.join(os.path.dirname(sys.executable), "oml-server"), "run", "--port", "PORT"],
    [sys.executable, "-c", "import wsgi"],  # what `gunicorn wsgi:app` imports in each worker
    # and gunicorn itself stops (worker boot error) instead of respawning workers forever
    [os.path.join(os.path.dirname(sys.executable), "gunicorn"), "-k", "gevent", "-w", "1",
     "-b", "127.0.0.1:PORT", "wsgi:app"],
], ids=["oml-server run", "wsgi", "gunicorn"])
def test_the_server_refuses_to_start_without_secrets(tmp_path, command):
    port = str(_free_port())
    command = [part.replace("PORT", port) for part in command]
    done = subprocess.run(command, cwd=REPO, env=_env(tmp_path, **_without_secrets()),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "refusing to start without real secrets: set SECRET_KEY, SIP_SECRET_KEY, ARI_PASSWORD" in done.stderr
    assert "Traceback" not in done.stderr


def test_generated_secrets_are_kept_private_and_reused(tmp_path):
    path = str(tmp_path / "instance" / "secrets.env")
    first, created = secrets_file.ensure(path)
    assert created and sorted(first) == sorted(config.DEVELOPMENT_VALUES)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert all(len(v) >= 32 and v not in config.DEVELOPMENT_VALUES.values() for v in first.values())
    again, created = secrets_file.ensure(path)
    assert again == first and not created


def test_a_secrets_file_missing_one_gets_it_and_keeps_the_others(tmp_path):
    path = tmp_path / "secrets.env"
    path.write_text("SECRET_KEY=kept-value-from-before\n")
    os.chmod(path, 0o644)
    values, created = secrets_file.ensure(str(path))
    assert created and values["SECRET_KEY"] == "kept-value-from-before"
    assert secrets_file.read(str(path)) == values
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_the_secrets_command_writes_a_file_a_shell_can_source(tmp_path):
    path = tmp_path / "secrets.env"
    cli = os.path.join(os.path.dirname(sys.executable), "oml-server")
    done = subprocess.run([cli, "secrets", str(path)], env=_without_secrets(), cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    shown = subprocess.run(["bash", "-c", f"set -a; . {path}; echo $SECRET_KEY"],
                           capture_output=True, text=True).stdout.strip()
    assert shown == secrets_file.read(str(path))["SECRET_KEY"]


def test_defaults():
    cfg = config.load({})
    assert cfg["TOKEN_EXPIRED_AFTER_SECONDS"] == 32400
    assert cfg["EPHEMERAL_USER_TTL"] == 28800
    assert cfg["BABEL_DEFAULT_LOCALE"] == "es"
    assert cfg["PASSWORD_HASH_METHOD"] == "scrypt"
    assert cfg["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///")
    assert cfg["SECRET_KEY"] is None and cfg["OML_ENV"] == "production"
