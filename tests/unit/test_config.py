"""Configuration: production mode refuses development secrets."""
import pytest

from oml_server import config


def test_production_refuses_development_secrets():
    with pytest.raises(config.InsecureConfiguration) as info:
        config.check_production(config.load({"OML_ENV": "production"}))
    assert "SECRET_KEY" in str(info.value) and "SIP_SECRET_KEY" in str(info.value)
    assert "ARI_PASSWORD" in str(info.value)


def test_production_starts_with_real_secrets(tmp_path):
    env = {"OML_ENV": "production", "SECRET_KEY": "k" * 40, "SIP_SECRET_KEY": "s" * 40,
           "ARI_PASSWORD": "p" * 20, "DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite3",
           "ARI_ENABLED": "0"}
    from oml_server import create_app
    app = create_app(env=env)
    assert app.config["OML_ENV"] == "production"


def test_create_app_refuses_in_production(tmp_path):
    from oml_server import create_app
    with pytest.raises(config.InsecureConfiguration):
        create_app(env={"OML_ENV": "production", "DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite3"})


def test_defaults():
    cfg = config.load({})
    assert cfg["TOKEN_EXPIRED_AFTER_SECONDS"] == 32400
    assert cfg["EPHEMERAL_USER_TTL"] == 28800
    assert cfg["BABEL_DEFAULT_LOCALE"] == "es"
    assert cfg["PASSWORD_HASH_METHOD"] == "scrypt"
    assert cfg["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///")
