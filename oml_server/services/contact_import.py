"""`oml-server import-contacts --campaign ID FILE.csv`: stream a CSV into a campaign's contact
database.

Each row gets new_contact's checks (contract §2.3): the columns, the main phone, the phone
format, a duplicate external id and, where the campaign forbids duplicates, a duplicate main
phone, both against the database and within the file. A bad row is reported with its line
number and the import goes on. Good rows are inserted in batches, one transaction per batch,
with one IN query per batch for the duplicates already stored (never a query per row); if a
concurrent writer wins a race the batch's insert fails on the unique constraints, and only
that batch is retried row by row. On SQLite a batch's search index (FTS5) and contact counter
are written in one statement each, not by the per-row trigger (`_Importer._insert`).
"""
import csv
import io
import os
from dataclasses import dataclass, field

import click
from flask import current_app
from flask_babel import force_locale
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from .. import messages as M
from ..database import is_unique_violation
from ..extensions import db
from ..models import Campaign, Contact, contact_bulk_loads, contact_search_text, utcnow
from . import contacts as contact_rules

BATCH_SIZE = 5000
IN_CHUNK = 900          # values per IN (...) query: under SQLite's bound-parameter limit
DELIMITERS = ",;\t|"
csv.field_size_limit(1024 * 1024)
CONTACTS = Contact.__table__     # Core inserts: executemany, no ORM bookkeeping per row


class ImportFailed(Exception):
    """Nothing can be imported: unknown campaign, unusable file or header."""


@dataclass
class ImportReport:
    imported: int = 0
    errors: list = field(default_factory=list)     # [(line number, message)], by line


class _CountingReader(io.RawIOBase):
    """A binary file that tells `on_read` how many bytes each read took (the progress bar)."""

    def __init__(self, raw, on_read):
        self.raw = raw
        self.on_read = on_read

    def readable(self):
        return True

    def readinto(self, buffer):
        count = self.raw.readinto(buffer)
        if count:
            self.on_read(count)
        return count


def _is_utf8(value):
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:   # a surrogate standing for an undecodable byte
        return False
    return True


def _sniff_delimiter(first_line):
    """`,` unless the header plainly uses another separator (`;` from a Spanish Excel)."""
    counts = {d: first_line.count(d) for d in DELIMITERS}
    best = max(counts, key=counts.get)
    return best if counts[best] > counts[","] else ","


class _Batch:
    def __init__(self):
        self.rows = []        # (line, values)

    def __len__(self):
        return len(self.rows)


class _Importer:
    def __init__(self, campaign):
        database = campaign.database
        # Plain copies: committing each batch expires the ORM objects.
        self.database_id = database.id
        self.columns = list(database.columns)
        self.main = database.main_phone
        self.ext_col = database.external_id_column
        self.forbid = not campaign.allow_duplicate_phones
        self.database = _DatabaseView(database)
        self.report = ImportReport()
        self.seen_external_ids = set()
        self.seen_phones = set()
        self.next_analyze = 0

    def header(self, names):
        names = [n.strip() for n in names]
        if not any(names):
            raise ImportFailed("the file is empty: the first line must name the columns")
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ImportFailed(f"the header repeats columns: {', '.join(repeated)}")
        unknown = [n for n in names if n not in self.columns]
        if unknown:
            raise ImportFailed(f"the header has columns the contact database lacks: "
                               f"{', '.join(unknown)} (its columns: {', '.join(self.columns)})")
        if self.main not in names:
            raise ImportFailed(f"the header lacks the main phone column {self.main!r}")
        self.names = names

    def row(self, line, fields, batch):
        """Check one row; a good one joins the batch, a bad one is reported."""
        if not all(_is_utf8(value) for value in fields):
            self.error(line, "not UTF-8 text")
            return
        if len(fields) != len(self.names):
            self.error(line, f"{len(fields)} fields where the header has {len(self.names)}")
            return
        try:
            values = contact_rules.normalize(self.database, dict(zip(self.names, fields)))
        except contact_rules.ContactInvalid as exc:
            self.error(line, exc.describe())
            return
        external_id = values.get(self.ext_col) if self.ext_col else None
        phone = values[self.main]
        if external_id is not None:
            if external_id in self.seen_external_ids:
                self.error(line, f"{self.ext_col}: {M.DUPLICATE_EXTERNAL_ID} (an earlier line)")
                return
        if self.forbid and phone in self.seen_phones:
            self.error(line, f"{self.main}: {M.DUPLICATE_PHONE} (an earlier line)")
            return
        if external_id is not None:
            self.seen_external_ids.add(external_id)
        if self.forbid:
            self.seen_phones.add(phone)
        batch.rows.append((line, values))

    def error(self, line, message):
        self.report.errors.append((line, str(message)))

    # -- writing a batch --------------------------------------------------------------------

    def _stored(self, column, values):
        """Which of `values` the database already holds in `column` (chunked IN queries)."""
        values = list(set(values))
        found = set()
        for start in range(0, len(values), IN_CHUNK):
            chunk = values[start:start + IN_CHUNK]
            found.update(db.session.scalars(select(column).where(
                Contact.database_id == self.database_id, column.in_(chunk))))
        return found

    def _record(self, values, now):
        external_id = values.get(self.ext_col) if self.ext_col else None
        phone = values[self.main]
        return {"database_id": self.database_id, "main_phone": phone, "external_id": external_id,
                "unique_phone": phone if self.forbid else None, "data": values,
                "assigned_agent_id": None, "created_at": now,
                "search_text": contact_search_text(phone, values)}

    def refresh_statistics(self):
        """PostgreSQL plans the batch's IN queries from the table's statistics; while they
        describe a much smaller table (a fresh database, autovacuum off or not yet run) it
        can pick an index on database_id alone and scan every contact, per query: 300 ms
        each at a million rows instead of 10. ANALYZE samples a fixed number of rows, so
        running it at the start and each time the import doubles the table stays cheap."""
        if self.report.imported < self.next_analyze:
            return
        self.next_analyze = max(2 * self.report.imported, 10_000)
        if db.session.get_bind().dialect.name != "postgresql":
            return
        try:
            db.session.execute(text("ANALYZE contacts"))
            db.session.commit()
        except SQLAlchemyError:      # not the table's owner: plan with what there is
            db.session.rollback()

    def flush(self, batch):
        if not batch.rows:
            return
        self.refresh_statistics()
        rows = batch.rows
        if self.ext_col:
            taken = self._stored(Contact.external_id,
                                 [v[self.ext_col] for _, v in rows if v.get(self.ext_col) is not None])
            if taken:
                rows = self._reject(rows, lambda v: v.get(self.ext_col) in taken,
                                    f"{self.ext_col}: {M.DUPLICATE_EXTERNAL_ID}")
        if self.forbid and rows:
            taken = self._stored(Contact.main_phone, [v[self.main] for _, v in rows])
            if taken:
                rows = self._reject(rows, lambda v: v[self.main] in taken,
                                    f"{self.main}: {M.DUPLICATE_PHONE}")
        now = utcnow()
        try:
            if rows:
                self._insert([self._record(v, now) for _, v in rows])
            db.session.commit()
            self.report.imported += len(rows)
        except IntegrityError as exc:
            db.session.rollback()
            if not is_unique_violation(exc):
                raise
            self._row_by_row(rows, now)
        batch.rows = []

    def _insert(self, records):
        """Insert the batch. On SQLite the row trigger's search-index and counter upkeep is
        done here for the whole batch, one statement each (per-row FTS5 inserts were most of
        the import's CPU); the marker row that tells the trigger so lives only inside this
        transaction. PostgreSQL's triggers are per statement already."""
        if db.session.get_bind().dialect.name != "sqlite":
            db.session.execute(CONTACTS.insert(), records)
            return
        db.session.execute(contact_bulk_loads.insert(), {"database_id": self.database_id})
        # The marker took the write lock: nobody else inserts until the commit, so the
        # batch's rows are those after the highest id now (rowids grow from the maximum).
        before = db.session.scalar(select(func.coalesce(func.max(Contact.id), 0)))
        db.session.execute(CONTACTS.insert(), records)
        db.session.execute(_BATCH_SEARCHABLE, {"after": before})
        db.session.execute(_COUNTER_ROW, {"dbid": self.database_id})
        db.session.execute(_BATCH_COUNTED, {"dbid": self.database_id, "n": len(records)})
        db.session.execute(contact_bulk_loads.delete().where(
            contact_bulk_loads.c.database_id == self.database_id))

    def _reject(self, rows, is_taken, message):
        kept = []
        for line, values in rows:
            if is_taken(values):
                self.error(line, message)
            else:
                kept.append((line, values))
        return kept

    def _row_by_row(self, rows, now):
        """A concurrent writer took a value after the batch's check: find the rows it hit."""
        for line, values in rows:
            try:
                with db.session.begin_nested():
                    db.session.execute(CONTACTS.insert(), [self._record(values, now)])
                self.report.imported += 1
            except IntegrityError as exc:
                if not is_unique_violation(exc):
                    raise
                if "unique_phone" in str(exc.orig):
                    self.error(line, f"{self.main}: {M.DUPLICATE_PHONE}")
                else:
                    self.error(line, f"{self.ext_col}: {M.DUPLICATE_EXTERNAL_ID}")
        db.session.commit()


# SQLite's bulk upkeep (_Importer._insert): what the contacts_added trigger does per row.
_BATCH_SEARCHABLE = text("INSERT INTO contacts_search (rowid, search_text) "
                         "SELECT id, search_text FROM contacts WHERE id > :after")
_COUNTER_ROW = text("INSERT OR IGNORE INTO contact_counts (database_id, shard, contacts) "
                    "VALUES (:dbid, 0, 0)")
_BATCH_COUNTED = text("UPDATE contact_counts SET contacts = contacts + :n "
                      "WHERE database_id = :dbid AND shard = 0")


class _DatabaseView:
    """What contacts.normalize reads of a ContactDatabase, detached from the session."""

    def __init__(self, database):
        self.id = database.id
        self.columns = list(database.columns)
        self.main_phone = database.main_phone
        self.other_phones = list(database.other_phones or [])
        self.external_id_column = database.external_id_column
        self.phone_columns = list(database.phone_columns)


def import_csv(campaign_id, path, progress=False, batch_size=BATCH_SIZE):
    """Import the CSV at `path` into the contact database of campaign `campaign_id`.

    Returns an ImportReport; raises ImportFailed when nothing can be imported. Rows are
    committed batch by batch, so an interrupted import keeps the batches already written.
    Messages are in the server's default language (there is no request to choose one).
    """
    with force_locale(current_app.config.get("BABEL_DEFAULT_LOCALE", "es")):
        return _import_csv(campaign_id, path, progress, batch_size)


def _import_csv(campaign_id, path, progress, batch_size):
    campaign = db.session.get(Campaign, campaign_id)
    if campaign is None:
        raise ImportFailed(f"campaign {campaign_id} does not exist")
    importer = _Importer(campaign)
    db.session.rollback()   # nothing held open while reading the file

    try:
        raw = open(path, "rb")
    except OSError as exc:
        raise ImportFailed(f"{path}: cannot be read: {exc}")
    size = os.fstat(raw.fileno()).st_size
    bar = None
    if progress:
        bar = click.progressbar(length=size, label="Importing contacts", file=click.get_text_stream("stderr"))
        bar.__enter__()
    try:
        counting = _CountingReader(raw, bar.update if bar else (lambda n: None))
        # Bytes that are not UTF-8 become lone surrogates: the row holding them is reported
        # and the rest of the file still imports.
        text = io.TextIOWrapper(io.BufferedReader(counting, 1024 * 1024), encoding="utf-8-sig",
                                errors="surrogateescape", newline="")
        first = text.readline()
        if not _is_utf8(first):
            raise ImportFailed(f"{path}: the header is not UTF-8 text")
        reader = csv.reader([first], delimiter=_sniff_delimiter(first))
        header = next(reader, [])
        importer.header(header)
        reader = csv.reader(text, delimiter=_sniff_delimiter(first))
        batch = _Batch()
        last_line = 1            # csv counts physical lines; a quoted field may span several
        try:
            for fields in reader:
                line = last_line + 1
                last_line = reader.line_num + 1
                if not fields:
                    continue     # a blank line
                importer.row(line, fields, batch)
                if len(batch) >= batch_size:
                    importer.flush(batch)
        except csv.Error as exc:
            importer.error(last_line + 1, f"unreadable CSV: {exc}: the import stopped here")
        importer.flush(batch)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
        raw.close()
    importer.report.errors.sort(key=lambda e: e[0])
    return importer.report
