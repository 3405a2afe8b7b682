"""Agents' presence in Asterisk: endpoint registration → `online`, and availability mirrored
into a custom device state `Stasis:oml-agent-<extension>` that a dialplan hint or queue can read.

Mapping (documented in the README):
    on a call                     → INUSE
    ringing for a call            → RINGING
    logged in, paused             → ONHOLD
    logged in, available          → NOT_INUSE
    logged out, or not registered → UNAVAILABLE
A mirror that cannot be written (Asterisk away) leaves `mirrored_state` NULL; it is written at
reconnect.
"""
import logging

import gevent.lock
from sqlalchemy import bindparam, select, update

from oml_server.database import Prepared, run_alone
from oml_server.extensions import db
from oml_server.models import AgentProfile, AgentSession, utcnow
from oml_server.services import outbox
from oml_server.services.call_state import prepared, release

from . import ids
from .ari_client import AriError

log = logging.getLogger(__name__)


def device_state_for(session):
    if session is None:
        return "UNAVAILABLE"
    if session.on_call:
        return "INUSE"
    if not session.online or not session.logged_in:
        return "UNAVAILABLE"
    if session.ringing:
        return "RINGING"
    if session.paused:
        return "ONHOLD"
    return "NOT_INUSE"


class Presence:
    def __init__(self, ari):
        self.ari = ari
        # Last endpoint state seen per extension: Asterisk sends EndpointStateChange whenever
        # an endpoint's channels change (twice per call), with the state unchanged; those
        # need no database work (they were ~12% of the engine's CPU under load).
        self._seen = {}
        # An event is not applied between the refresh's listing of the endpoints and its write
        # of that list: the list, older than the event, would undo it until the next sweep.
        self._registrations = gevent.lock.RLock()

    def endpoint_changed(self, event):
        endpoint = event.get("endpoint") or {}
        if endpoint.get("technology") != "PJSIP":
            return
        resource, state = endpoint.get("resource"), endpoint.get("state")
        with self._registrations:
            if self._seen.get(resource) == state:
                return
            self._seen[resource] = state
            self.set_online(resource, state == "online")

    def set_online(self, extension, online):
        agent = db.session.scalar(select(AgentProfile).where(AgentProfile.sip_extension == str(extension)))
        if agent is None:
            return
        session = db.session.get(AgentSession, agent.id)
        if session is None:
            session = AgentSession(agent_id=agent.id)
            db.session.add(session)
        if session.online != online:
            session.online = online
            session.mirrored_state = None
            session.status_since = utcnow()  # supervision: UNAVAILABLE (or back) from now
            outbox.agent_status(session, "online" if online else "offline")
        db.session.commit()
        self.mirror(agent.id)

    def mirror(self, agent_id, freed=None, again=False):
        """Write the agent's availability into Asterisk; True when it is there now. `freed`:
        the session as a call's end just left it (call_state.Freed, mirrored_state NULL), so
        its device state is known without reading the session. `again`: write it even when
        the row says Asterisk has it (it may have been overwritten since)."""
        if freed is not None and freed.extension is not None:
            return self._write(agent_id, freed.extension, device_state_for(freed))
        # One query for the extension and the session's flags (device_state_for reads them off
        # the row by name); the write after the ARI request is one UPDATE, no reload.
        row = run_alone(prepared("presence-mirror", lambda: Prepared(select(
            AgentProfile.sip_extension, AgentSession.agent_id.label("session_id"),
            AgentSession.on_call, AgentSession.online, AgentSession.logged_in,
            AgentSession.ringing, AgentSession.paused, AgentSession.mirrored_state)
            .outerjoin(AgentSession, AgentSession.agent_id == AgentProfile.id)
            .where(AgentProfile.id == bindparam("aid")))), {"aid": agent_id}).first()
        session = row if row is not None and row.session_id is not None else None
        state = device_state_for(session)
        done = row is None or (not again and session is not None
                               and session.mirrored_state == state)
        if not done:
            release()  # no connection held across the ARI request (see call_state.release)
        if done:
            return row is not None
        return self._write(agent_id, row.sip_extension, state)

    def _write(self, agent_id, extension, state):
        try:
            self.ari.device_state_put(ids.device_state_name(extension), state)
        except AriError as exc:
            log.info("device state of agent %s not mirrored yet: %s", agent_id, exc)
            _store_mirrored(agent_id, None)
            return False
        _store_mirrored(agent_id, state)
        return True

    def mirror_on_call(self, agent_id, extension):
        """makeCall just put the agent on a call (on_call, mirrored_state NULL): INUSE is known
        without reading the session. Stored only while that is still so; if the agent's state
        moved meanwhile (the call already ended), the full mirror writes whatever it is now,
        even when the end's own mirror stored it first: this INUSE has just overwritten it."""
        try:
            self.ari.device_state_put(ids.device_state_name(extension), "INUSE")
        except AriError as exc:
            log.info("device state of agent %s not mirrored yet: %s", agent_id, exc)
            return False
        sessions = AgentSession.__table__
        stored = run_alone(prepared("presence-on-call", lambda: Prepared(update(sessions).where(
            sessions.c.agent_id == bindparam("aid"), sessions.c.on_call.is_(True),
            sessions.c.mirrored_state.is_(None)).values(mirrored_state="INUSE"))),
            {"aid": agent_id}).rowcount == 1
        release()
        return stored or self.mirror(agent_id, again=True)

    def refresh_all(self, force=False):
        """After a (re)connect and with every periodic sweep: registration state of every
        agent from Asterisk, then the mirrors that are not what the rows say. `force` (Asterisk
        restarted: its device states are gone) writes every mirror again.

        Two queries whatever the number of agents, plus a write per agent whose registration
        changed and a mirror per agent whose device state is stale: this runs every
        ENGINE_SWEEP_SECONDS, and reading each agent's session and mirror one by one was ~2
        statements per agent (2,000 every 30 s with 1,000 agents) for nothing to change."""
        with self._registrations:
            if not self._write_registrations(force):
                return
        stale = [row.agent_id for row in db.session.execute(select(
            AgentSession.agent_id, AgentSession.on_call, AgentSession.online,
            AgentSession.logged_in, AgentSession.ringing, AgentSession.paused,
            AgentSession.mirrored_state)).all()
            if device_state_for(row) != row.mirrored_state]
        release()
        for agent_id in stale:
            self.mirror(agent_id)

    def _write_registrations(self, force):
        """Each agent's registration as ARI lists it now, into the sessions; False when
        Asterisk could not be asked."""
        try:
            listed = {e["resource"]: e.get("state") for e in self.ari.endpoints("PJSIP")}
        except AriError as exc:
            log.warning("cannot list endpoints: %s", exc)
            return False
        endpoints = {resource: state == "online" for resource, state in listed.items()}
        agents = db.session.execute(select(
            AgentProfile.id, AgentProfile.sip_extension,
            AgentSession.agent_id.label("session_id"), AgentSession.online)
            .outerjoin(AgentSession, AgentSession.agent_id == AgentProfile.id)).all()
        for agent in agents:
            online = endpoints.get(agent.sip_extension, False)
            if agent.session_id is not None and agent.online == online and not force:
                continue
            session = db.session.get(AgentSession, agent.id) if agent.session_id is not None else None
            if session is None:
                session = AgentSession(agent_id=agent.id)
                db.session.add(session)
            if session.online != online:   # (None: a session just created)
                session.status_since = utcnow()
            changed = bool(session.online) != online
            session.online, session.mirrored_state = online, None
            if changed:
                outbox.agent_status(session, "online" if online else "offline")
        db.session.commit()
        # The database was just rewritten from ARI's list (no event applied meanwhile: the
        # lock): from now on an event is applied when it differs from that list (an event
        # repeating it changes nothing). Forgetting every state instead made the first event
        # of each endpoint after every sweep cost three statements for nothing.
        self._seen = listed
        return True


def _store_mirrored(agent_id, state):
    # A Core UPDATE on the table: the ORM's bulk-update path cost more than the statement.
    sessions = AgentSession.__table__
    run_alone(prepared("presence-store", lambda: Prepared(update(sessions).where(
        sessions.c.agent_id == bindparam("aid")).values(mirrored_state=bindparam("mirrored")))),
        {"aid": agent_id, "mirrored": state})   # one round trip, committed alone
    release()
