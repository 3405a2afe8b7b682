"""campaign/<id>/contacts/ (contract-calls §5): the agent's DataTables list of the campaign's
contacts not yet dispositioned in it.

Rows: `[contact id, main phone, <every other column in the database's order>, ""]`, empty
values as "---". `search[value]`: a case-insensitive substring of the phone or of any value
(OMniLeads: `telefono__contains | datos__contains`), matched against contacts.search_text.

Fast at a million contacts (bench/supervision_bench.py):
- the page is one query in id order (`NOT EXISTS` a disposition), LIMIT/OFFSET;
- recordsTotal is contact_databases.contacts_count minus campaign_dispositioned, two
  counters the database's triggers keep in the writer's own transaction: no count at all;
- a search is served by a substring index (pg_trgm GIN on PostgreSQL, the contacts_search
  FTS5 trigram table on SQLite; terms of 1–2 characters have no trigram and scan, but such
  terms match densely, so the scan stops early). recordsFiltered counts matches up to
  SEARCH_COUNT_LIMIT: counting every contact containing "maria" would read most of a
  million rows; past the limit the answer says the limit, and DataTables pages through
  that many (an agent narrows the search long before).
"""
from sqlalchemy import and_, exists, func, select, text

from ..extensions import db
from ..models import Contact, Disposition

MAX_LENGTH = 1000
EMPTY = "---"
SEARCH_COUNT_LIMIT = 10_000


def _not_dispositioned(campaign_id):
    return ~exists().where(Disposition.contact_id == Contact.id,
                           Disposition.campaign_id == campaign_id)


_TOTAL = text(
    "SELECT d.contacts_count - COALESCE((SELECT n.dispositioned FROM campaign_dispositioned n"
    " WHERE n.campaign_id = :cid AND n.database_id = d.id), 0)"
    " FROM contact_databases d WHERE d.id = :dbid")


def total(campaign):
    """Contacts of the campaign's database not dispositioned in it: two counter rows."""
    return db.session.scalar(_TOTAL, {"cid": campaign.id, "dbid": campaign.database_id}) or 0


def _matching(term):
    """contacts.search_text contains `term` (lower case). SQLite: through the FTS5 trigram
    table when the term has a trigram; GLOB there, since FTS5 does not serve LIKE … ESCAPE."""
    needle = term.lower()
    if db.session.get_bind().dialect.name == "postgresql":
        escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return Contact.search_text.like(f"%{escaped}%")
    pattern = "*" + "".join(f"[{c}]" if c in "*?[" else c for c in needle) + "*"
    if len(needle) < 3 or not _has_fts():
        return Contact.search_text.op("GLOB")(pattern)
    return Contact.id.in_(text("SELECT rowid FROM contacts_search WHERE search_text GLOB :pattern")
                          .bindparams(pattern=pattern))


_fts = {}


def _has_fts():
    """The FTS5 table exists (the migration creates it where SQLite has FTS5)."""
    engine = db.session.get_bind()
    if engine.url not in _fts:
        _fts[engine.url] = db.session.scalar(text(
            "SELECT count(*) FROM sqlite_master WHERE name = 'contacts_search'")) > 0
    return _fts[engine.url]


def page(campaign, start, length, search=""):
    """The DataTables answer (without `draw`) for one page."""
    database = campaign.database
    pending = and_(Contact.database_id == database.id, _not_dispositioned(campaign.id))
    all_pending = total(campaign)
    where = and_(pending, _matching(search)) if search else pending
    filtered = all_pending if not search else db.session.scalar(
        select(func.count()).select_from(
            select(Contact.id).where(where).limit(SEARCH_COUNT_LIMIT).subquery()))
    others = [c for c in database.columns if c != database.main_phone]
    rows = db.session.execute(select(Contact.id, Contact.main_phone, Contact.data).where(where)
                              .order_by(Contact.id).offset(start).limit(length)).all()
    data = [[row.id, row.main_phone or EMPTY] +
            [_shown((row.data or {}).get(column)) for column in others] + [""] for row in rows]
    return {"recordsTotal": all_pending, "recordsFiltered": filtered, "data": data}


def _shown(value):
    if value is None or value == "":
        return EMPTY
    return value if isinstance(value, str) else str(value)
