"""The few rules every small admin resource shares (sites, authentications, webhooks): load a
body through its schema into the endpoint's 400, 404 in the endpoint's style, a duplicate name
(a unique constraint) as a field error."""
from marshmallow import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from .. import messages as M
from ..database import is_unique_violation
from ..errors import business_error, data_errors
from ..extensions import db


class Resource:
    def __init__(self, model, schema, represent, not_found):
        self.model, self.schema, self.represent, self.not_found = model, schema, represent, not_found

    def all(self):
        return [self.represent(o) for o in db.session.scalars(select(self.model).order_by(self.model.id))]

    def get(self, pk):
        obj = db.session.get(self.model, pk)
        if obj is None:
            raise business_error(404, message=self.not_found)
        return obj

    def load(self, data, partial=False):
        try:
            return self.schema().load(data, partial=partial)
        except ValidationError as exc:
            raise data_errors(exc.messages)

    def save(self, obj, values):
        for key, value in values.items():
            setattr(obj, key, value)
        db.session.add(obj)
        try:
            db.session.commit()
        except IntegrityError as exc:
            db.session.rollback()
            if is_unique_violation(exc):
                raise data_errors({"nombre": [str(M.NAME_TAKEN)]})
            raise
        return self.represent(obj)

    def delete(self, pk, with_it=None):
        """Delete; `with_it(pk)` writes what goes with it in the same transaction."""
        obj = self.get(pk)
        if with_it is not None:
            with_it(pk)
        db.session.delete(obj)
        db.session.commit()


