"""Contacts: the checks of new_contact (contract §2.3), shared by the API, provisioning and
the CSV import, and the insert that keeps uniqueness in the database under concurrency."""
import re

from sqlalchemy import bindparam, exists, insert, null, select
from sqlalchemy.exc import IntegrityError

from .. import messages as M
from ..database import Prepared, is_unique_violation, run
from ..extensions import db
from ..models import Contact, contact_search_text

PHONE_RE = re.compile(r"^\+?\d{3,25}$")
MAX_VALUE_LENGTH = 1024
MAX_EXTERNAL_ID_LENGTH = 128   # contacts.external_id is VARCHAR(128); PostgreSQL enforces it


class ContactInvalid(Exception):
    """Why a contact cannot be stored. `kind` names the contract check that failed:

    unknown_fields (payload: list of keys), missing_main_phone (payload: column name),
    field_errors (payload: {column: [message]}), duplicate_external_id (payload: column name),
    duplicate_phone (payload: None).
    """

    def __init__(self, kind, payload=None):
        super().__init__(kind, payload)
        self.kind = kind
        self.payload = payload

    def describe(self):
        """One line for people reading a CLI report."""
        if self.kind == "unknown_fields":
            return f"unknown columns: {', '.join(map(str, self.payload))}"
        if self.kind == "missing_main_phone":
            return f"{self.payload}: the main phone is required"
        if self.kind == "field_errors":
            return "; ".join(f"{k}: {' '.join(str(m) for m in v)}" for k, v in self.payload.items())
        if self.kind == "duplicate_external_id":
            return f"{self.payload}: {M.DUPLICATE_EXTERNAL_ID}"
        return str(M.DUPLICATE_PHONE)


def _text(value):
    """A column value as text: strings as they are, numbers as written; None for the rest."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return value
    return None


def _blank(value):
    """Not sent, null, or only whitespace (a blank main phone would be stored as "")."""
    return value is None or (isinstance(value, str) and not value.strip())


def normalize(database, data, ignore=()):
    """Check `data` (column -> value) against the database's columns, in contract order.

    Returns every column's value (data columns not sent are "", an external id not sent is
    None). Raises ContactInvalid.
    """
    columns = database.columns
    unknown = [key for key in data if key not in columns and key not in ignore]
    if unknown:
        raise ContactInvalid("unknown_fields", unknown)
    main = database.main_phone
    if _blank(data.get(main)):
        raise ContactInvalid("missing_main_phone", main)

    values, errors = {}, {}
    ext_col = database.external_id_column
    for column in columns:
        raw = data.get(column)
        if column == ext_col and _blank(raw):
            values[column] = None
            continue
        text = _text(raw)
        if text is None:
            errors[column] = ["Not a valid string."]
            continue
        text = text.strip()
        limit = MAX_EXTERNAL_ID_LENGTH if column == ext_col else MAX_VALUE_LENGTH
        if len(text) > limit:
            errors[column] = [f"Ensure this field has no more than {limit} characters."]
            continue
        values[column] = text
    for column in database.phone_columns:
        value = values.get(column)
        if column in errors or value in (None, ""):
            continue
        if not PHONE_RE.match(value):
            errors[column] = [M.INVALID_PHONE]
    if errors:
        raise ContactInvalid("field_errors", errors)
    return values


# Built once; both checks in one round trip when both apply (new_contact's usual case).
_EXT_TAKEN = (select(Contact.id).where(Contact.database_id == bindparam("db"),
                                       Contact.external_id == bindparam("ext"))
              .limit(1).scalar_subquery())
_PHONE_TAKEN = (select(Contact.id).where(Contact.database_id == bindparam("db"),
                                         Contact.main_phone == bindparam("phone"))
                .limit(1).scalar_subquery())
_TAKEN = {(True, False): select(_EXT_TAKEN, null()), (False, True): select(null(), _PHONE_TAKEN),
          (True, True): select(_EXT_TAKEN, _PHONE_TAKEN)}


def check_duplicates(database, values, forbid_duplicate_phones):
    """The read checks, in contract order; the database constraints settle races."""
    ext_col = database.external_id_column
    check_ext = bool(ext_col) and values.get(ext_col) is not None
    if not (check_ext or forbid_duplicate_phones):
        return
    params = {"db": database.id}
    if check_ext:
        params["ext"] = values[ext_col]
    if forbid_duplicate_phones:
        params["phone"] = values[database.main_phone]
    ext_taken, phone_taken = db.session.connection().execute(
        _TAKEN[check_ext, bool(forbid_duplicate_phones)], params).one()
    if ext_taken is not None:
        raise ContactInvalid("duplicate_external_id", ext_col)
    if phone_taken is not None:
        raise ContactInvalid("duplicate_phone")


def build(database, values, forbid_duplicate_phones=False, assigned_agent_id=None, contact_id=None):
    """An unsaved Contact for checked `values`."""
    phone = values[database.main_phone]
    ext_col = database.external_id_column
    return Contact(id=contact_id, database_id=database.id, main_phone=phone,
                   external_id=values.get(ext_col) if ext_col else None,
                   unique_phone=phone if forbid_duplicate_phones else None,
                   data=values, assigned_agent_id=assigned_agent_id)


def add(database, values, forbid_duplicate_phones=False, assigned_agent_id=None, contact_id=None):
    """Insert a checked contact; a lost race becomes ContactInvalid.

    The caller commits (so a contact and its disposition can be one transaction). A lost race
    rolls the whole transaction back: no savepoint, because pysqlite commits on RELEASE.
    """
    check_duplicates(database, values, forbid_duplicate_phones)
    contact = build(database, values, forbid_duplicate_phones, assigned_agent_id, contact_id)
    db.session.add(contact)
    try:
        db.session.flush()
    except IntegrityError as exc:
        raise _lost_race(exc, database)
    return contact


def _lost_race(exc, database):
    """Roll back after a failed insert and say which uniqueness rule a concurrent writer won."""
    db.session.rollback()
    if not is_unique_violation(exc):
        return exc
    if "unique_phone" in str(exc.orig):
        return ContactInvalid("duplicate_phone")
    return ContactInvalid("duplicate_external_id", database.external_id_column)


_COLUMNS = ("database_id", "main_phone", "external_id", "unique_phone", "data",
            "assigned_agent_id", "search_text")


def _insert_unless_taken(check_ext, check_phone):
    """INSERT … SELECT <the values> WHERE <neither duplicate check finds a row> RETURNING id:
    the duplicate checks and the write in one round trip (no row back: a check failed)."""
    table = Contact.__table__
    values = select(*(bindparam(name, type_=table.c[name].type) for name in _COLUMNS))
    if check_ext:
        values = values.where(~exists().where(Contact.database_id == bindparam("database_id"),
                                              Contact.external_id == bindparam("external_id")))
    if check_phone:
        values = values.where(~exists().where(Contact.database_id == bindparam("database_id"),
                                              Contact.main_phone == bindparam("main_phone")))
    return insert(Contact).from_select(_COLUMNS, values).returning(Contact.id)


_INSERTS = {(ext, phone): Prepared(_insert_unless_taken(ext, phone))
            for ext in (False, True) for phone in (False, True)}


def row_params(database, values, forbid_duplicate_phones, assigned_agent_id):
    """A checked contact's columns as insert_row's statements take them (_COLUMNS); the
    external id is checked for duplicates when not None, the phone when `unique_phone` is."""
    phone = values[database.main_phone]
    ext_col = database.external_id_column
    return {"database_id": database.id, "main_phone": phone,
            "external_id": values.get(ext_col) if ext_col else None,
            "unique_phone": phone if forbid_duplicate_phones else None, "data": values,
            "assigned_agent_id": assigned_agent_id,
            "search_text": contact_search_text(phone, values)}


def insert_row(database, values, forbid_duplicate_phones=False, assigned_agent_id=None):
    """Like `add`, in one statement (the API's hot path): the duplicate checks and the INSERT;
    returns the new contact's id. When a check fails, check_duplicates says which, in
    contract order. The caller commits."""
    params = row_params(database, values, forbid_duplicate_phones, assigned_agent_id)
    contact_id = _execute_insert(
        _INSERTS[params["external_id"] is not None, bool(forbid_duplicate_phones)], params, database)
    if contact_id is None:
        check_duplicates(database, values, forbid_duplicate_phones)
        # The duplicate went away between the two statements: insert unchecked, the
        # constraints still keep external ids and forbidden duplicate phones unique.
        contact_id = _execute_insert(_INSERTS[False, False], params, database)
    return contact_id


def _execute_insert(statement, params, database):
    try:
        return run(statement, params).scalar()
    except IntegrityError as exc:
        raise _lost_race(exc, database)


def payload(database, contact):
    """`contacto` of new_contact: every column, in order."""
    data = contact.data or {}
    return {column: data.get(column, None if column == database.external_id_column else "")
            for column in database.columns}
