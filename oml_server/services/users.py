"""Users, agents and their credentials."""
from flask import current_app
from sqlalchemy import bindparam, select

from ..database import Prepared, run_alone
from ..extensions import db
from ..models import ROLES, AgentProfile, AgentSession, SupervisorProfile, User
from ..passwords import check_password
from ..passwords import hash_password as _hash

_dummy_hashes = {}


def _method():
    # scrypt by default; the test suite configures a cheap method to stay fast.
    return current_app.config.get("PASSWORD_HASH_METHOD", "scrypt")


def _dummy_hash():
    """A valid hash to compare against when the user does not exist, so a login for an unknown
    username costs the same time as one with a wrong password (no username probing by timing)."""
    method = _method()
    if method not in _dummy_hashes:
        _dummy_hashes[method] = _hash("not-a-password", method)
    return _dummy_hashes[method]


def hash_password(password):
    return _hash(password, _method())


def set_password(user, password):
    """Change the password; every token issued before stops working."""
    user.password_hash = hash_password(password)
    user.token_version = (user.token_version or 0) + 1


# A login's one read, prepared and run on its own: the columns its answer and its token need
# (the ORM load of the user and its joined agent was a quarter of a login's CPU,
# bench/cpu_per_request.py). No connection is held while the password is checked.
_users, _agents = User.__table__, AgentProfile.__table__
_CREDENTIALS = Prepared(
    select(_users.c.id, _users.c.password_hash, _users.c.is_active, _users.c.token_version,
           _users.c.first_name, _users.c.last_name, _users.c.email,
           _agents.c.id.label("agent_id"))
    .select_from(_users.outerjoin(_agents, _agents.c.user_id == _users.c.id))
    .where(_users.c.username == bindparam("username")))


def check_credentials(username, password):
    """The active user with these credentials, or None: a row with the user's id,
    token_version, first_name, last_name, email and agent_id (None when not an agent)."""
    user = run_alone(_CREDENTIALS, {"username": username}).first()
    if user is None:
        check_password(_dummy_hash(), password)
        return None
    if not check_password(user.password_hash, password) or not user.is_active:
        return None
    return user


def create_user(username, password, role, first_name="", last_name="", email="",
                is_active=True, user_id=None, agent_id=None, sip_extension=None):
    """Create a user (and its agent profile when the role is Agente); caller commits."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    user = User(id=user_id, username=username, password_hash=hash_password(password), role=role,
                first_name=first_name or "", last_name=last_name or "", email=email or "",
                is_active=is_active, token_version=0)
    db.session.add(user)
    db.session.flush()
    if role == "Agente":
        ensure_agent(user, agent_id=agent_id, sip_extension=sip_extension)
    return user


def ensure_agent(user, agent_id=None, sip_extension=None):
    """The user's agent profile, created when missing (extension 1000 + user id by default)."""
    if user.agent is None:
        agent = AgentProfile(id=agent_id, user=user,
                             sip_extension=str(sip_extension or 1000 + user.id))
        db.session.add(agent)
        db.session.flush()
        db.session.add(AgentSession(agent_id=agent.id))
    elif sip_extension is not None:
        user.agent.sip_extension = str(sip_extension)
    return user.agent


def ensure_supervisor_phone(user, sip_extension):
    """The user's supervisor phone (spy, whisper, barge, take-call ring it); caller commits."""
    phone = supervisor_phone(user.id)
    if phone is None:
        phone = SupervisorProfile(user_id=user.id, sip_extension=str(sip_extension))
        db.session.add(phone)
    elif phone.sip_extension != str(sip_extension):
        phone.sip_extension = str(sip_extension)
    return phone


def supervisor_phone(user_id):
    return db.session.scalar(select(SupervisorProfile).where(SupervisorProfile.user_id == user_id))
