"""Unbound extension instances, initialised by the app factory."""

from flask_jwt_extended import JWTManager
from flask_limiter import Limiter
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData

from taskapp.api import Api
from taskapp.clientaddr import client_network
from taskapp.transactions import Session

# Named constraints so Alembic migrations are reviewable and portable.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

db = SQLAlchemy(
    metadata=MetaData(naming_convention=NAMING_CONVENTION), session_options={"class_": Session}
)
migrate = Migrate()
api = Api()
jwt = JWTManager()
# remote_addr is the peer unless ProxyFix (TRUSTED_PROXIES) rewrote it from X-Forwarded-For;
# either way canonical (taskapp.clientaddr), and counted by network (an IPv6 client's /64).
limiter = Limiter(client_network)
