"""campaign/<id>/contacts/ (contract-calls §5): the agent's DataTables list of the campaign's
contacts not yet dispositioned in it.

Rows: `[contact id, main phone, <every other column in the database's order>, ""]`, empty
values as "---". `search[value]`: a phone starting with it, or any contact data containing it.
Fast at a million contacts: a page is one indexed query (ordered by id, `NOT EXISTS` a
disposition); the unfiltered total is the database's contacts minus the campaign's
dispositions, kept a few seconds (CONTACTS_COUNT_CACHE_SECONDS) since a million-row count
is the slow part; a search counts its matches every time (a scan of the contact data).
"""
import json
import time

from sqlalchemy import String, and_, cast, exists, func, or_, select

from flask import current_app

from ..extensions import db
from ..models import Contact, Disposition

MAX_LENGTH = 1000
EMPTY = "---"


def _not_dispositioned(campaign_id):
    return ~exists().where(Disposition.contact_id == Contact.id,
                           Disposition.campaign_id == campaign_id)


def _like(text):
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _matching(text):
    """A phone starting with `text`, or contact data containing it (case-insensitive). The data
    column is JSON text, where non-ASCII letters are stored escaped: both spellings match."""
    data = func.lower(cast(Contact.data, String))
    spellings = dict.fromkeys((text.lower(), json.dumps(text.lower())[1:-1]))
    return or_(Contact.main_phone.like(f"{_like(text)}%", escape="\\"),
               *(data.like(f"%{_like(s)}%", escape="\\") for s in spellings))


def page(campaign, start, length, search=""):
    """The DataTables answer (without `draw`) for one page."""
    database = campaign.database
    pending = and_(Contact.database_id == database.id, _not_dispositioned(campaign.id))
    total = _total(database.id, campaign.id)
    where = and_(pending, _matching(search)) if search else pending
    filtered = total if not search else db.session.scalar(
        select(func.count()).select_from(Contact).where(where))
    others = [c for c in database.columns if c != database.main_phone]
    rows = db.session.execute(select(Contact.id, Contact.main_phone, Contact.data).where(where)
                              .order_by(Contact.id).offset(start).limit(length)).all()
    data = [[row.id, row.main_phone or EMPTY] +
            [_shown((row.data or {}).get(column)) for column in others] + [""] for row in rows]
    return {"recordsTotal": total, "recordsFiltered": filtered, "data": data}


_totals = {}  # (database id, campaign id) -> (valid until, total)


def _total(database_id, campaign_id):
    """Contacts of the database not dispositioned in the campaign. Counting a million rows
    costs ~0.4 s on PostgreSQL, so the figure is kept CONTACTS_COUNT_CACHE_SECONDS per process:
    paging through the list (DataTables asks at every page) counts once."""
    ttl = current_app.config.get("CONTACTS_COUNT_CACHE_SECONDS", 15)
    key, now = (database_id, campaign_id), time.monotonic()
    cached = _totals.get(key)
    if ttl > 0 and cached is not None and cached[0] > now:
        return cached[1]
    in_database = db.session.scalar(select(func.count()).select_from(Contact)
                                    .where(Contact.database_id == database_id))
    done = db.session.scalar(select(func.count()).select_from(Disposition).where(
        Disposition.campaign_id == campaign_id,
        exists().where(Contact.id == Disposition.contact_id, Contact.database_id == database_id)))
    if len(_totals) > 10000:
        _totals.clear()
    _totals[key] = (now + ttl, in_database - done)
    return in_database - done


def _shown(value):
    if value is None or value == "":
        return EMPTY
    return value if isinstance(value, str) else str(value)
