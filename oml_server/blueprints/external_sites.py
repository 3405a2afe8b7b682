"""External sites and their authentications (contract-calls §6; OMniLeads' shapes).

Administrador, Gerente, Supervisor. Answers `{"status": "SUCCESS", "message", <key>: …}`;
errors `{"status": "ERROR", "message", "errors": {field: [msg]}}` (400) or
`{"status": "ERROR", "message"}` (404 [better]: OMniLeads answers 500 for an unknown id).
"""
from flask import request
from flask_smorest import Blueprint

from .. import messages as M
from ..apidoc import crm_errors
from ..auth import login_required
from ..body import read_body
from ..errors import business_error, unreadable_as_data_errors
from ..services import crm_sites, deliveries

blp = Blueprint("external_sites", __name__, url_prefix="/api/v1",
                description="CRM external sites and their authentications")

errors_documented = crm_errors(blp)


MANAGERS = ("Administrador", "Gerente", "Supervisor")


def _ok(message, **data):
    return {"status": "SUCCESS", "message": message, **data}


def _body():
    return read_body(unreadable_as_data_errors())


# -- sites ------------------------------------------------------------------------------------

@blp.route("/external_sites/", methods=["GET"])
@login_required(*MANAGERS)
@blp.response(200)
@errors_documented
def list_sites():
    """The external sites."""
    return _ok(M.SITES_LISTED, externalSites=crm_sites.SITES.all())


@blp.route("/external_sites/<int:pk>/", methods=["GET"])
@login_required(*MANAGERS)
@blp.response(200)
@errors_documented
def site_detail(pk):
    """One external site (404 when unknown)."""
    return _ok(M.SITE_FOUND, externalSiteDetail=crm_sites.site_representation(crm_sites.SITES.get(pk)))


@blp.route("/external_sites/create/", methods=["POST"])
@login_required(*MANAGERS)
@blp.response(201)
@errors_documented
def create_site():
    """Create an external site (GET takes no `formato`, POST needs one; JSON or Servidor take
    no `objetivo`)."""
    return _ok(M.SITE_CREATED, externalSite=crm_sites.create_site(_body())), 201


@blp.route("/external_sites/<int:pk>/update/", methods=["PUT"])
@login_required(*MANAGERS)
@blp.response(200)
@errors_documented
def update_site(pk):
    """Replace an external site's fields."""
    return _ok(M.SITE_UPDATED, externalSite=crm_sites.update_site(pk, _body()))


@blp.route("/external_sites/<int:pk>/delete/", methods=["DELETE"])
@login_required(*MANAGERS)
@blp.response(200)
@errors_documented
def delete_site(pk):
    """Delete an external site (its campaigns are left without one)."""
    crm_sites.SITES.delete(pk, with_it=deliveries.cancel_site)
    return _ok(M.SITE_DELETED)


@blp.route("/external_sites/<int:pk>/hide/", methods=["PUT"])
@login_required(*MANAGERS)
@blp.response(200)
@errors_documented
def hide_site(pk):
    """Hide an external site."""
    return _ok(M.SITE_HIDDEN, externalSite=crm_sites.set_hidden(pk, True))


@blp.route("/external_sites/<int:pk>/show/", methods=["PUT"])
@login_required(*MANAGERS)
@blp.response(200)
@errors_documented
def show_site(pk):
    """Show a hidden external site."""
    return _ok(M.SITE_SHOWN, externalSite=crm_sites.set_hidden(pk, False))


@blp.route("/external_sites/<int:pk>/deliveries/", methods=["GET"])
@login_required(*MANAGERS)
@blp.response(200)
@errors_documented
def site_deliveries(pk):
    """[extension] The site's requests, newest first (`?before=<id>` pages back)."""
    crm_sites.SITES.get(pk)
    return {"deliveries": deliveries.log_of(f"site:{pk}", request.args.get("before", type=int))}


# -- authentications --------------------------------------------------------------------------

@blp.route("/external_site_authentications/", methods=["GET"])
@login_required(*MANAGERS)
@blp.response(200)
@errors_documented
def list_auths():
    """The authentications (their password and token are never returned)."""
    return _ok(M.AUTHS_LISTED, externalSiteAuthentications=crm_sites.AUTHS.all())


@blp.route("/external_site_authentications/<int:pk>/", methods=["GET"])
@login_required(*MANAGERS)
@blp.response(200)
@errors_documented
def auth_detail(pk):
    """One authentication (404 when unknown)."""
    return _ok(M.AUTH_FOUND, externalSiteAuthenticationDetail=crm_sites.auth_representation(
        crm_sites.AUTHS.get(pk)))


@blp.route("/external_site_authentications/create/", methods=["POST"])
@login_required(*MANAGERS)
@blp.response(201)
@errors_documented
def create_auth():
    """Create an authentication (`duracion` 0: the lifetime is read from `campo_duracion`)."""
    return _ok(M.AUTH_CREATED, externalSiteAuthentication=crm_sites.create_auth(_body())), 201


@blp.route("/external_site_authentications/<int:pk>/update/", methods=["PUT"])
@login_required(*MANAGERS)
@blp.response(200)
@errors_documented
def update_auth(pk):
    """Replace an authentication's fields (an absent `password` keeps the stored one)."""
    return _ok(M.AUTH_UPDATED, externalSiteAuthentication=crm_sites.update_auth(pk, _body()))


@blp.route("/external_site_authentications/<int:pk>/delete/", methods=["DELETE"])
@login_required(*MANAGERS)
@blp.response(200)
@errors_documented
def delete_auth(pk):
    """Delete an authentication (its sites are left without one)."""
    crm_sites.AUTHS.delete(pk)
    return _ok(M.AUTH_DELETED)


@blp.route("/external_site_authentications/test/", methods=["POST"])
@login_required(*MANAGERS)
@blp.response(200)
@errors_documented
def test_auth():
    """Fetch a token with the authentication the body describes (nothing is stored)."""
    return _tested(*crm_sites.test_auth(_body()))


@blp.route("/external_site_authentications/<int:pk>/test/", methods=["POST"])
@login_required(*MANAGERS)
@blp.response(200)
@errors_documented
def test_stored_auth(pk):
    """Fetch a token with a stored authentication (the stored token is left alone)."""
    return _tested(*crm_sites.test_auth(None, pk))


def _tested(ok, error):
    if not ok:
        raise business_error(400, message=M.AUTH_TEST_FAILED, errors=[error])
    return _ok(M.AUTH_TEST_OK)
