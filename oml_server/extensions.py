"""The Flask extensions, created unbound so every module can import them."""
from flask_babel import Babel
from flask_jwt_extended import JWTManager
from flask_migrate import Migrate
from flask_smorest import Api
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase

from schemas.common import DetailSchema


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
jwt = JWTManager()
babel = Babel()


class ContractApi(Api):
    # Every status an operation does not list is documented as the contract's framework error,
    # `{"detail": ...}` (401/403/404/405/413/415/429), not flask-smorest's own error shape.
    ERROR_SCHEMA = DetailSchema


api = ContractApi()
