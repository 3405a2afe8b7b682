"""The data model shared by the REST server and the ARI engine.

Uniqueness rules that must hold under concurrent requests are database constraints, never a
read-then-write: (database, external id) of a contact, one disposition per (contact, campaign),
one live call per agent (`calls.active_agent_id`), one main phone per database where the
campaign forbids duplicates (`contacts.unique_phone`).
"""
from datetime import datetime, timezone

from sqlalchemy import (JSON, event, BigInteger, Boolean, Column, DateTime, ForeignKey, Index, Integer,
                        LargeBinary, String, Table, Text, UniqueConstraint, false, text)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .extensions import db

db.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow():
    return datetime.now(timezone.utc)


ROLES = ("Administrador", "Gerente", "Supervisor", "Referente", "Agente")
CAMPAIGN_TYPES = ("manual", "preview", "dialer", "inbound")
CAMPAIGN_STATES = ("active", "inactive", "paused", "finished")
STRATEGIES = ("leastrecent", "fewestcalls", "random", "rrmemory")
OPTION_TYPES = ("engaged", "no_action", "scheduled")
PAUSE_TYPES = ("productive", "recreational")
# Pause ids that exist without a row: after-call work, supervision, on WhatsApp.
SYSTEM_PAUSES = {"0": "ACW", "00": "Supervision", "OW": "WhatsApp"}


class User(db.Model):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(150), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20))
    first_name: Mapped[str] = mapped_column(String(150), default="")
    last_name: Mapped[str] = mapped_column(String(150), default="")
    email: Mapped[str] = mapped_column(String(254), default="")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Bumped on every password change; tokens carry it, so older tokens stop working.
    token_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    agent: Mapped["AgentProfile"] = relationship(back_populates="user", uselist=False)

    @property
    def agent_id(self):
        """The agent profile's id, or None (as `auth.TokenUser.agent_id`)."""
        return self.agent.id if self.agent is not None else None

    @property
    def is_agent(self):
        return self.role == "Agente"


class AgentProfile(db.Model):
    """An agent: login's `agent_id`, makeCall's `idAgent`."""
    __tablename__ = "agents"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    sip_extension: Mapped[str] = mapped_column(String(32), unique=True)
    # SIP credentials the engine pushed to Asterisk (digest username `<expiry>:<ext>`).
    sip_username: Mapped[str | None] = mapped_column(String(64))
    sip_expires_at: Mapped[int | None] = mapped_column(Integer)
    # The agent's phone is a browser (the console asked with ?webrtc=1): its endpoint is pushed
    # with DTLS/ICE/AVPF. The last phone to ask for credentials decides (one contact per agent).
    sip_webrtc: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Shown as `grupo` in supervision/agents (provisioning `agent.group`).
    group: Mapped[str] = mapped_column(String(128), default="", server_default="")

    user: Mapped[User] = relationship(back_populates="agent")


class SupervisorProfile(db.Model):
    """A supervisor's own phone: rings for spy, whisper, barge and take-call. Same SIP columns
    as an agent's, so the engine pushes it to Asterisk the same way (`sip_accounts`). An
    extension is unique among supervisors here and checked against agents' by provisioning."""
    __tablename__ = "supervisors"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    sip_extension: Mapped[str] = mapped_column(String(32), unique=True)
    sip_username: Mapped[str | None] = mapped_column(String(64))
    sip_expires_at: Mapped[int | None] = mapped_column(Integer)
    sip_webrtc: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    user: Mapped[User] = relationship()


class ExternalSystem(db.Model):
    __tablename__ = "external_systems"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)


class AgentExternalId(db.Model):
    """An agent's id in an external system (makeCall's external `idAgent`)."""
    __tablename__ = "agent_external_ids"
    id: Mapped[int] = mapped_column(primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    external_system_id: Mapped[int] = mapped_column(ForeignKey("external_systems.id", ondelete="CASCADE"))
    external_agent_id: Mapped[str] = mapped_column(String(128))
    __table_args__ = (
        UniqueConstraint("external_system_id", "external_agent_id"),
        UniqueConstraint("agent_id", "external_system_id"),
    )


class ContactDatabase(db.Model):
    __tablename__ = "contact_databases"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    columns: Mapped[list] = mapped_column(JSON)            # every column, in order
    main_phone: Mapped[str] = mapped_column(String(128))
    other_phones: Mapped[list] = mapped_column(JSON, default=list)
    external_id_column: Mapped[str | None] = mapped_column(String(128))

    @property
    def phone_columns(self):
        return [self.main_phone] + [c for c in (self.other_phones or []) if c != self.main_phone]


class Contact(db.Model):
    __tablename__ = "contacts"
    id: Mapped[int] = mapped_column(primary_key=True)
    database_id: Mapped[int] = mapped_column(ForeignKey("contact_databases.id", ondelete="CASCADE"))
    main_phone: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str | None] = mapped_column(String(128))
    # Set to main_phone only where the campaign forbids duplicate phones; NULLs never collide.
    unique_phone: Mapped[str | None] = mapped_column(String(32))
    data: Mapped[dict] = mapped_column(JSON)               # column name -> value
    assigned_agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # services.contacts.search_text(): what campaign/<id>/contacts/ searches, indexed for
    # substrings (pg_trgm on PostgreSQL, the contacts_search FTS5 table on SQLite).
    search_text: Mapped[str | None] = mapped_column(Text)
    __table_args__ = (
        UniqueConstraint("database_id", "external_id"),
        UniqueConstraint("database_id", "unique_phone"),
        Index("ix_contacts_database_phone", "database_id", "main_phone"),
        # campaign/<id>/contacts/ pages a database's contacts in id order.
        Index("ix_contacts_database_id", "database_id", "id"),
    )


def contact_search_text(phone, values):
    """What campaign/<id>/contacts/ searches: the phone and every non-empty value, one per
    line, lower case (a search is a case-insensitive substring of one of them, as OMniLeads'
    `telefono__contains | datos__contains`, without matching the JSON's keys or quoting).
    The ORM keeps it on every insert and update (below); Core writers pass it."""
    shown = [phone or ""] + [v if isinstance(v, str) else str(v)
                             for v in (values or {}).values() if v is not None and v != ""]
    return "\n".join(dict.fromkeys(shown)).lower()


@event.listens_for(Contact, "before_insert")
@event.listens_for(Contact, "before_update")
def _keep_search_text(mapper, connection, contact):
    contact.search_text = contact_search_text(contact.main_phone, contact.data)


# A database's contacts, and a campaign's dispositioned contacts per database: counters the
# database's triggers keep (migration contacts_search_and_counts), spread over a few `shard`
# rows per key so that concurrent writers do not queue on one row; a total is their sum.
contact_counts = Table(
    "contact_counts", db.metadata,
    Column("database_id", ForeignKey("contact_databases.id", ondelete="CASCADE"), primary_key=True),
    Column("shard", Integer, primary_key=True),
    Column("contacts", BigInteger, nullable=False, server_default="0"),
)
campaign_dispositioned = Table(
    "campaign_dispositioned", db.metadata,
    Column("campaign_id", ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True),
    Column("database_id", ForeignKey("contact_databases.id", ondelete="CASCADE"), primary_key=True),
    Column("shard", Integer, primary_key=True),
    Column("dispositioned", BigInteger, nullable=False, server_default="0"),
)
# A database whose contacts an import is writing in the current transaction (SQLite's row
# trigger leaves the batch's search index and counter upkeep to the import: migration
# contact_bulk_loads).
contact_bulk_loads = Table(
    "contact_bulk_loads", db.metadata,
    Column("database_id", Integer, primary_key=True),
)

campaign_agents = Table(
    "campaign_agents", db.metadata,
    Column("campaign_id", ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True),
    Column("agent_id", ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True),
)

campaign_supervisors = Table(
    "campaign_supervisors", db.metadata,
    Column("campaign_id", ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
)


class ExternalSiteAuthentication(db.Model):
    """How a CRM site authenticates (OMniLeads' AutenticacionSitioExterno). `token` is the one
    fetched last, kept until `token_expires_at` so every process reuses it; never returned."""
    __tablename__ = "external_site_authentications"
    id: Mapped[int] = mapped_column(primary_key=True)
    nombre: Mapped[str] = mapped_column(String(128), unique=True)
    url: Mapped[str] = mapped_column(String(2048))
    username: Mapped[str] = mapped_column(String(128))
    password: Mapped[str] = mapped_column(String(1024))
    campo_token: Mapped[str] = mapped_column(String(128), default="token")
    duracion: Mapped[int] = mapped_column(Integer, default=0)          # seconds; 0: read campo_duracion
    campo_duracion: Mapped[str | None] = mapped_column(String(128))
    ssl_estricto: Mapped[bool] = mapped_column(Boolean, default=True)
    token: Mapped[str | None] = mapped_column(Text)
    token_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ExternalSite(db.Model):
    """A CRM site (OMniLeads' SitioExterno); the numeric codes are OMniLeads' own."""
    __tablename__ = "external_sites"
    id: Mapped[int] = mapped_column(primary_key=True)
    nombre: Mapped[str] = mapped_column(String(128), unique=True)
    url: Mapped[str] = mapped_column(String(2048))
    oculto: Mapped[bool] = mapped_column(Boolean, default=False)
    disparador: Mapped[int] = mapped_column(Integer)     # 1 agent, 2 automatic, 3 server, 4 disposition
    metodo: Mapped[int] = mapped_column(Integer)         # 1 GET, 2 POST
    formato: Mapped[int | None] = mapped_column(Integer)  # 1 multipart, 2 form, 3 text, 4 json
    objetivo: Mapped[int | None] = mapped_column(Integer)  # 1 embedded, 2 new tab
    autenticacion_id: Mapped[int | None] = mapped_column(
        ForeignKey("external_site_authentications.id", ondelete="SET NULL"))
    signing_secret: Mapped[str | None] = mapped_column(String(256))   # [extension]

    autenticacion: Mapped[ExternalSiteAuthentication | None] = relationship()


class Webhook(db.Model):
    """[extension] A subscription: every event whose type matches `events` is POSTed to `url`."""
    __tablename__ = "webhooks"
    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2048))
    events: Mapped[list] = mapped_column(JSON, default=lambda: ["*"])   # types, "call.*" or "*"
    secret: Mapped[str | None] = mapped_column(String(256))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Campaign(db.Model):
    __tablename__ = "campaigns"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    type: Mapped[str] = mapped_column(String(16), default="manual")
    state: Mapped[str] = mapped_column(String(16), default="active")
    database_id: Mapped[int] = mapped_column(ForeignKey("contact_databases.id"))
    external_system_id: Mapped[int | None] = mapped_column(ForeignKey("external_systems.id"))
    external_id: Mapped[str | None] = mapped_column(String(128))
    allow_duplicate_phones: Mapped[bool] = mapped_column(Boolean, default=True)
    # Record every bridged call (provisioning `record`).
    record: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Who gets the next inbound call: one of STRATEGIES (provisioning `strategy`).
    strategy: Mapped[str] = mapped_column(String(16), default="leastrecent",
                                          server_default="leastrecent")
    # rrmemory: the agent that got the last call; the next one after it (by id) gets the next.
    last_agent_id: Mapped[int | None] = mapped_column(Integer)
    external_site_id: Mapped[int | None] = mapped_column(ForeignKey("external_sites.id", ondelete="SET NULL"))
    # What the site receives: [{"name", "type", "value"}] (OMniLeads' ParametrosCrm), in order.
    crm_parameters: Mapped[list] = mapped_column(JSON, default=list)
    # After-call work: seconds an agent stays in the ACW pause ("0") once it has saved the
    # disposition of one of the campaign's calls; 0 = ready again at once (provisioning
    # `after_call_work`).
    acw_seconds: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    __table_args__ = (UniqueConstraint("external_system_id", "external_id"),)

    database: Mapped[ContactDatabase] = relationship()
    external_system: Mapped[ExternalSystem | None] = relationship()
    external_site: Mapped[ExternalSite | None] = relationship()
    agents: Mapped[list[AgentProfile]] = relationship(secondary=campaign_agents)
    supervisors: Mapped[list[User]] = relationship(secondary=campaign_supervisors)

    @property
    def is_active(self):
        return self.state == "active"


class DispositionOption(db.Model):
    __tablename__ = "disposition_options"
    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    type: Mapped[str] = mapped_column(String(16), default="no_action")
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    # A disposition with this option fires the campaign's Calificación site (interaccion_crm).
    crm_interaction: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    __table_args__ = (UniqueConstraint("campaign_id", "name"),)

    campaign: Mapped[Campaign] = relationship()


class Disposition(db.Model):
    __tablename__ = "dispositions"
    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    option_id: Mapped[int] = mapped_column(ForeignKey("disposition_options.id"))
    callid: Mapped[str | None] = mapped_column(String(32))
    comments: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    __table_args__ = (UniqueConstraint("contact_id", "campaign_id"),)

    contact: Mapped[Contact] = relationship()
    option: Mapped[DispositionOption] = relationship()


class Pause(db.Model):
    __tablename__ = "pauses"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    type: Mapped[str] = mapped_column(String(16), default="recreational")


class AgentSession(db.Model):
    """An agent's presence: one row per agent, written by the REST layer and the engine."""
    __tablename__ = "agent_sessions"
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True)
    online: Mapped[bool] = mapped_column(Boolean, default=False)        # SIP endpoint reachable
    logged_in: Mapped[bool] = mapped_column(Boolean, default=False)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    pause_id: Mapped[str | None] = mapped_column(String(16))
    ringing: Mapped[bool] = mapped_column(Boolean, default=False)
    on_call: Mapped[bool] = mapped_column(Boolean, default=False)
    # When the agent last became free: inbound calls go to the one idle longest.
    idle_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Device state last mirrored into Asterisk; NULL means it still has to be written.
    mirrored_state: Mapped[str | None] = mapped_column(String(16))
    # When the supervision status last changed (login, pause, ringing, on a call, phone lost):
    # supervision/agents' `tiempo`. Every writer of the flags above sets it.
    status_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The console's last presence heartbeat; NULL: it never beat (not subject to the timeout).
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When an after-call-work pause ends by itself (the engine then makes the agent ready);
    # NULL for every other pause. Index: the engine looks for expired ones every second.
    pause_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    @property
    def available(self):
        return self.online and self.logged_in and not self.paused and not self.on_call


class AgentActivity(db.Model):
    __tablename__ = "agent_activity"
    id: Mapped[int] = mapped_column(primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(String(32))
    pause_id: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


CALL_KINDS = ("click_to_call", "inbound", "outbound")
CALL_STATES = ("requested", "agent_ringing", "agent_answered", "contact_ringing", "bridged",
               "ended", "failed")
FINAL_CALL_STATES = ("ended", "failed")


class Call(db.Model):
    __tablename__ = "calls"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)   # uuid4 hex: fits `callid`
    kind: Mapped[str] = mapped_column(String(16))
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="SET NULL"))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"), index=True)
    # Equals agent_id while the call is live, NULL once final: one live call per agent.
    active_agent_id: Mapped[int | None] = mapped_column(Integer, unique=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    number: Mapped[str] = mapped_column(String(64), default="")
    state: Mapped[str] = mapped_column(String(16), default="requested", index=True)
    reason: Mapped[str | None] = mapped_column(String(255))
    hangup_cause: Mapped[int | None] = mapped_column(Integer)
    agent_channel_id: Mapped[str | None] = mapped_column(String(64))
    contact_channel_id: Mapped[str | None] = mapped_column(String(64))
    bridge_id: Mapped[str | None] = mapped_column(String(64))
    # The Asterisk node (engine) that runs the call: commands and sweeps go to it.
    node: Mapped[str] = mapped_column(String(64), default="local", server_default="local")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    agent_answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    bridged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The call's recording, relative to RECORDINGS_DIR (`<YYYY-MM-DD>/<call id>.<format>`),
    # set when recording starts (campaigns with `record`).
    recording_file: Mapped[str | None] = mapped_column(String(255))
    # The dialplan variables (`OMLCRM…`) of an inbound call that the campaign's CRM parameters
    # of type dialplan name, read from the caller's channel when it enters: {name: value}.
    crm_variables: Mapped[dict | None] = mapped_column(JSON)
    # call_status/campaign/<id> counts a campaign's calls between two days.
    __table_args__ = (Index("ix_calls_campaign_created", "campaign_id", "created_at"),)

    @property
    def is_final(self):
        return self.state in FINAL_CALL_STATES


# Bridges: main (the call's), hold (the caller on hold or waiting for a transfer, with music),
# consult (the agent with a consulted party).
LEG_ROLES = ("agent", "contact", "caller", "transfer_target", "consult", "third_party", "snoop",
             "supervisor", "main", "hold")


class CallLeg(db.Model):
    """One Asterisk channel or bridge of a call, ours or adopted (an inbound caller, an agent's
    own phone). Events find their call through these rows when the engine's memory does not
    know them (a worker that ended, a restart), and the sweep compares them with Asterisk.
    `state` is live until the channel is gone (or handed back to the dialplan: released)."""
    __tablename__ = "call_legs"
    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    resource: Mapped[str] = mapped_column(String(8), default="channel")   # channel | bridge
    asterisk_id: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(24))
    node: Mapped[str] = mapped_column(String(64), default="local")
    state: Mapped[str] = mapped_column(String(8), default="live")        # live | gone | released
    hangup_cause: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    __table_args__ = (UniqueConstraint("node", "resource", "asterisk_id"),)


class Event(db.Model):
    """The outbox: one row per thing that happened (a call state change, an agent status…),
    written in the same transaction as the change. Ids only grow: consumers resume after the
    last id they saw."""
    __tablename__ = "events"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    type: Mapped[str] = mapped_column(String(48))
    call_id: Mapped[str | None] = mapped_column(String(32), index=True)
    agent_id: Mapped[int | None] = mapped_column(Integer, index=True)
    campaign_id: Mapped[int | None] = mapped_column(Integer, index=True)
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class EngineNode(db.Model):
    """An engine's heartbeat: API-only workers read it to know whether calls can be placed."""
    __tablename__ = "engine_nodes"
    node: Mapped[str] = mapped_column(String(64), primary_key=True)
    connected: Mapped[bool] = mapped_column(Boolean, default=False)
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    asterisk_startup: Mapped[str | None] = mapped_column(String(64))
    # What the connect-time check found missing in Asterisk (modules, contexts): [text, …]
    problems: Mapped[list] = mapped_column(JSON, default=list)


class ThrottleEvent(db.Model):
    """One counted event (a failed login, a click-to-call) under a throttle key, e.g.
    `login-user:<name>@<address>`, `login-addr:<address>`, `call:<agent id>`. Kept in the database
    so every worker process sees the same counts; rows older than their window are pruned."""
    __tablename__ = "throttle_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    __table_args__ = (Index("ix_throttle_events_key_created_at", "key", "created_at"),)


class Delivery(db.Model):
    """One request to a CRM (a webhook's event, a site's request), stored before it is sent
    and kept as its log. `key` makes the fan-out idempotent per destination (the event id, or
    the call for a Servidor site: one request per call); `order_key` (the call) holds a request
    back while an earlier one of the same destination and call is not delivered. A sender claims
    a row by moving it to `sending` with a lease; an expired lease is claimable again."""
    __tablename__ = "deliveries"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    destination: Mapped[str] = mapped_column(String(24))       # "webhook:<id>" | "site:<id>"
    key: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    order_key: Mapped[str | None] = mapped_column(String(48))
    method: Mapped[str] = mapped_column(String(8), default="POST")
    url: Mapped[str] = mapped_column(Text)
    content_type: Mapped[str | None] = mapped_column(String(128))
    body: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    authentication_id: Mapped[int | None] = mapped_column(Integer)
    secret: Mapped[str | None] = mapped_column(String(256))
    verify_tls: Mapped[bool] = mapped_column(Boolean, default=True)
    state: Mapped[str] = mapped_column(String(12), default="pending")  # pending|sending|delivered|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    __table_args__ = (
        UniqueConstraint("destination", "key"),
        Index("ix_deliveries_due", "state", "next_attempt_at"),
        # "Is an earlier request of this call still open?" is one probe of this partial
        # index (without it the claim compared every open row with every other).
        Index("ix_deliveries_open", "destination", "order_key", "id",
              postgresql_where=text("state IN ('pending', 'sending')"),
              sqlite_where=text("state IN ('pending', 'sending')")),
    )


class OutboxCursor(db.Model):
    """How far a reader of the outbox (the delivery fan-out) got: the last event id it handled."""
    __tablename__ = "outbox_cursors"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_event_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), default=0)
