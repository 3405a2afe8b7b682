"""campaign/<id>/contacts/ (contract-calls §5): the agent's DataTables list of the campaign's
contacts not yet dispositioned in it.

As OMniLeads (api_app API_ObtenerContactosCampanaView): `recordsTotal` is every contact of
the campaign's database, dispositioned or not; `recordsFiltered` the contacts listed (not
dispositioned in the campaign, and matching the search when there is one); rows
`[contact id, main phone, <every other column in the database's order>, ""]`, empty values
as "---". `search[value]`: a case-insensitive substring of the phone or of any value
(OMniLeads: `telefono__icontains | datos__icontains`), matched against contacts.search_text.

Fast at a million contacts (bench/supervision_bench.py):
- recordsTotal and the unsearched recordsFiltered are sums of a few counter rows
  (contact_counts, campaign_dispositioned) the database's triggers keep in the writer's own
  transaction: no count;
- the page is one query in id order (`NOT EXISTS` a disposition), LIMIT/OFFSET;
- a rare term is found through a substring index (pg_trgm GIN on PostgreSQL, the
  contacts_search FTS5 trigram table on SQLite), a common one by the id-ordered scan, which
  stops early (terms of 1–2 characters have no trigram: always the scan);
- a search's matches are looked up once: the first SEARCH_COUNT_LIMIT (1,000) of them, in
  id order, give both recordsFiltered and the page (one statement; the trigram lookup is the
  costly part when the term is made of trigrams every contact has, as "nombre 123456");
- recordsFiltered counts matches up to SEARCH_COUNT_LIMIT: counting every contact that
  contains "maria" would read most of a million rows (OMniLeads counts them all). Past the
  limit the answer says the limit and DataTables pages through that many; an agent narrows
  the search first.
"""
from sqlalchemy import and_, exists, func, select, text

from ..extensions import db
from ..models import Contact, Disposition

MAX_LENGTH = 1000
EMPTY = "---"
SEARCH_COUNT_LIMIT = 1000


def _not_dispositioned(campaign_id):
    return ~exists().where(Disposition.contact_id == Contact.id,
                           Disposition.campaign_id == campaign_id)


_COUNTS = text(
    "SELECT COALESCE((SELECT sum(contacts) FROM contact_counts WHERE database_id = :dbid), 0),"
    " COALESCE((SELECT sum(dispositioned) FROM campaign_dispositioned"
    " WHERE campaign_id = :cid AND database_id = :dbid), 0)")


def counts(campaign):
    """(contacts of the campaign's database, those not dispositioned in the campaign): the sums
    of a few counter rows."""
    every, dispositioned = db.session.execute(
        _COUNTS, {"cid": campaign.id, "dbid": campaign.database_id}).one()
    return every, every - dispositioned


def _matching(term, database_id):
    """contacts.search_text contains `term` (lower case), as the cheapest plan for it."""
    needle = term.lower()
    if db.session.get_bind().dialect.name == "postgresql":
        # PostgreSQL's planner estimates a LIKE from its statistics and picks the trigram
        # index (rare terms) or the id-ordered scan (dense ones) by itself.
        escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return Contact.search_text.like(f"%{escaped}%")
    # SQLite: GLOB (FTS5 serves GLOB and LIKE, not LIKE … ESCAPE; the text is lower case).
    pattern = "*" + "".join(f"[{c}]" if c in "*?[" else c for c in needle) + "*"
    scan = Contact.search_text.op("GLOB")(pattern)
    if len(needle) < 3 or not _has_fts() or _dense(pattern, database_id):
        return scan
    return Contact.id.in_(text("SELECT rowid FROM contacts_search WHERE search_text GLOB :pattern")
                          .bindparams(pattern=pattern))


_SAMPLE = text("SELECT count(*) FROM (SELECT search_text FROM contacts WHERE database_id = :db"
               " ORDER BY id LIMIT :rows) WHERE search_text GLOB :pattern")
SAMPLE_ROWS = 5000


def _dense(pattern, database_id):
    """SQLite's planner does not weigh FTS5 against a scan: FTS5 materializes every match
    (seconds when a term is in most contacts), a scan in id order stops at the count's
    limit (seconds when the term is rare). A sample of the first rows decides: at 1 % or
    more, the scan meets SEARCH_COUNT_LIMIT matches within 100 × the limit rows."""
    found = db.session.scalar(_SAMPLE, {"db": database_id, "rows": SAMPLE_ROWS, "pattern": pattern})
    return found * 100 >= SAMPLE_ROWS


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
    every, pending = counts(campaign)
    where = and_(Contact.database_id == database.id, _not_dispositioned(campaign.id))
    columns = (Contact.id, Contact.main_phone, Contact.data)

    def one_page(where):
        return db.session.execute(select(*columns).where(where).order_by(Contact.id)
                                  .offset(start).limit(length)).all()
    if not search:
        filtered, rows = pending, one_page(where)
    elif start + length <= SEARCH_COUNT_LIMIT:
        filtered, rows = _first_matches(and_(where, _matching(search, database.id)), columns,
                                        start, length)
    else:  # past the counted matches: counted, then paged on its own
        where = and_(where, _matching(search, database.id))
        filtered = db.session.scalar(select(func.count()).select_from(
            select(Contact.id).where(where).limit(SEARCH_COUNT_LIMIT).subquery()))
        rows = one_page(where)
    others = [c for c in database.columns if c != database.main_phone]
    data = [[row.id, row.main_phone or EMPTY] +
            [_shown((row.data or {}).get(column)) for column in others] + [""] for row in rows]
    return {"recordsTotal": every, "recordsFiltered": filtered, "data": data}


def _first_matches(where, columns, start, length):
    """(matches up to SEARCH_COUNT_LIMIT, the page's rows) in one statement: the first matches
    in id order are looked up once (a CTE), counted and paged."""
    matches = (select(Contact.id).where(where).order_by(Contact.id).limit(SEARCH_COUNT_LIMIT)
               .cte("matches"))
    paged = (select(matches.c.id, func.count().over().label("matched"))
             .order_by(matches.c.id).offset(start).limit(length).subquery())
    rows = db.session.execute(select(*columns, paged.c.matched)
                              .join(paged, paged.c.id == Contact.id).order_by(Contact.id)).all()
    if rows:
        return rows[0].matched, rows
    if start == 0:
        return 0, rows
    return db.session.scalar(select(func.count()).select_from(matches)), rows


def _shown(value):
    if value is None or value == "":
        return EMPTY
    return value if isinstance(value, str) else str(value)
