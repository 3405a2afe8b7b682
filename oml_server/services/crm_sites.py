"""External sites and their authentications (OMniLeads' SitioExterno /
AutenticacionSitioExterno): the rules behind their REST endpoints. Names are unique by
constraint; a password, a token and a signing secret are written, never read back."""
from schemas.crm import ExternalSiteAuthenticationSchema, ExternalSiteSchema

from .. import messages as M
from ..errors import data_errors
from ..extensions import db
from ..models import ExternalSite, ExternalSiteAuthentication
from . import crm_auth
from .crud import Resource


def site_representation(site):
    return {"id": site.id, "nombre": site.nombre, "url": site.url, "oculto": site.oculto,
            "disparador": site.disparador, "metodo": site.metodo, "formato": site.formato,
            "objetivo": site.objetivo, "autenticacion": site.autenticacion_id}


def auth_representation(auth):
    return {"id": auth.id, "nombre": auth.nombre, "url": auth.url, "username": auth.username,
            "campo_token": auth.campo_token, "duracion": auth.duracion,
            "campo_duracion": auth.campo_duracion, "ssl_estricto": auth.ssl_estricto}


SITES = Resource(ExternalSite, ExternalSiteSchema, site_representation, M.SITE_NOT_FOUND)
AUTHS = Resource(ExternalSiteAuthentication, ExternalSiteAuthenticationSchema, auth_representation,
              M.AUTH_NOT_FOUND)


def _site_values(values):
    auth_id = values.pop("autenticacion", None)
    if auth_id is not None and db.session.get(ExternalSiteAuthentication, auth_id) is None:
        raise data_errors({"autenticacion": [str(M.AUTH_NOT_FOUND)]})
    values["autenticacion_id"] = auth_id
    return values


def create_site(data):
    return SITES.save(ExternalSite(), _site_values(SITES.load(data)))


def update_site(pk, data):
    site = SITES.get(pk)
    values = SITES.load(data)
    if "signing_secret" not in data:   # not returned, so not sent back: keep it
        values.pop("signing_secret", None)
    return SITES.save(site, _site_values(values))


def set_hidden(pk, hidden):
    return SITES.save(SITES.get(pk), {"oculto": hidden})


def create_auth(data):
    return AUTHS.save(ExternalSiteAuthentication(), AUTHS.load(data))


def update_auth(pk, data):
    auth = AUTHS.get(pk)
    if "password" not in data or data.get("password") in (None, ""):
        data = {**data, "password": auth.password}   # never returned, so kept when absent
    values = AUTHS.load(data)
    values.update(token=None, token_expires_at=None)  # new credentials: the old token goes
    return AUTHS.save(auth, values)


def test_auth(data, pk=None):
    """Fetch a token with the stored authentication `pk`, or with the one the body describes
    (not stored): (ok, message)."""
    if pk is not None:
        auth = AUTHS.get(pk)
    else:
        auth = ExternalSiteAuthentication(**AUTHS.load(data))
    try:
        crm_auth.fetch(auth)
    except crm_auth.TokenUnavailable as exc:
        return False, str(exc)
    return True, None
