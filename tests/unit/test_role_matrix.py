"""Who may call what (contract §1.4): every endpoint × every role."""
import pytest

ALL = ("Administrador", "Gerente", "Supervisor", "Referente", "Agente")
AGENT = ("Agente",)
SUPERVISORS = ("Administrador", "Gerente", "Supervisor")

ENDPOINTS = [
    ("post", "/api/v1/campaign/database_metadata/", ALL),
    ("post", "/api/v1/new_contact/", ("Administrador", "Gerente", "Supervisor", "Agente")),
    ("post", "/api/v1/makeCall/", AGENT),
    ("get", "/api/v1/campaign/1/dispositionOptions/", AGENT),
    ("get", "/api/v1/campaign/ext-1/dispositionOptions/1/", AGENT),
    ("get", "/api/v1/disposition/", AGENT),
    ("post", "/api/v1/disposition/", AGENT),
    ("get", "/api/v1/disposition/1/", AGENT),
    ("put", "/api/v1/disposition/1/", AGENT),
    ("post", "/api/v1/new_contact/disposition/", AGENT),
    ("post", "/api/v1/asterisk_login/", AGENT),
    ("post", "/api/v1/asterisk_logout/", AGENT),
    ("post", "/api/v1/asterisk_pause/", AGENT),
    ("post", "/api/v1/asterisk_unpause/", AGENT),
    ("post", "/api/v1/asterisk_ringing/", AGENT),
    ("post", "/api/v1/asterisk_reject_call/", AGENT),
    ("post", "/api/v1/asterisk_disabled/", AGENT),
    ("post", "/api/v1/asterisk_ready/", AGENT),
    ("post", "/api/v1/hangupCall/", AGENT),
    ("get", "/api/v1/sip/credentials/agent/", SUPERVISORS + AGENT),
    ("get", "/api/v1/supervision/agents/", ("Administrador", "Gerente", "Supervisor", "Referente")),
    ("get", "/api/v1/agent_status/campaign/1", SUPERVISORS),
    ("get", "/api/v1/agent_status_list/campaign/1", SUPERVISORS),
    ("get", "/api/v1/call_status/campaign/1", SUPERVISORS),
    ("post", "/api/v1/call/spy/", SUPERVISORS),
    ("get", "/api/v1/call_record/abc/", SUPERVISORS + AGENT),
    ("get", "/api/v1/grabacion/archivo/?filename=/x.wav", ALL),
    ("post", "/api/v1/grabacion/descarga_masiva", SUPERVISORS),
    ("post", "/api/v1/make_call_outside_campaign/", AGENT),
    ("get", "/api/v1/campaign/1/contacts/?draw=1&start=0&length=10", AGENT),
]
# Endpoints whose wrong-role answer is OMniLeads' own body, not DRF's.
OWN_403 = [
    ("post", "/api/v1/supervision/action_on_agent/999999/", SUPERVISORS,
     {"status": "ERROR", "message": "Wrong user profile"}),
    ("post", "/api/v1/agent/presence/heartbeat/", AGENT,
     {"status": "ERROR", "message": "Usuario sin perfil de agente"}),
]

NO_PERMISSION = {"detail": "Usted no tiene permiso para realizar esta acción."}


@pytest.mark.parametrize("method,path,allowed", ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in ENDPOINTS])
@pytest.mark.parametrize("role", ALL)
def test_role_matrix(client, make, method, path, allowed, role):
    user = make.user(role)
    kwargs = {"headers": make.headers(user)}
    if method in ("post", "put"):
        kwargs["json"] = {}
    response = getattr(client, method)(path, **kwargs)
    if role in allowed:
        assert response.status_code != 403, response.get_json()
        assert response.status_code < 500
    else:
        assert response.status_code == 403
        assert response.get_json() == NO_PERMISSION


@pytest.mark.parametrize("method,path,allowed", ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in ENDPOINTS])
def test_anonymous_is_refused(client, method, path, allowed):
    response = getattr(client, method)(path)
    assert response.status_code == 403
    assert response.get_json() == {"detail": "Las credenciales de autenticación no se proveyeron."}


@pytest.mark.parametrize("method,path,allowed", ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in ENDPOINTS])
def test_unsupported_method_is_405(client, make, method, path, allowed):
    response = client.patch(path, headers=make.headers(make.agent()))
    assert response.status_code == 405
    assert response.get_json() == {"detail": 'Método "PATCH" no permitido.'}


@pytest.mark.parametrize("method,path,allowed,refused", OWN_403, ids=[p for _, p, _, _ in OWN_403])
@pytest.mark.parametrize("role", ALL)
def test_role_matrix_own_403(client, make, method, path, allowed, refused, role):
    user = make.user(role)
    response = getattr(client, method)(path, headers=make.headers(user), json={})
    if role in allowed:
        assert response.status_code != 403, response.get_json()
        assert response.status_code < 500
    else:
        assert (response.status_code, response.get_json()) == (403, refused)


@pytest.mark.parametrize("method,path,allowed,refused", OWN_403, ids=[p for _, p, _, _ in OWN_403])
def test_own_403_anonymous_and_405(client, make, method, path, allowed, refused):
    response = getattr(client, method)(path)
    assert response.status_code == 403
    assert response.get_json() == {"detail": "Las credenciales de autenticación no se proveyeron."}
    response = client.patch(path, headers=make.headers(make.agent()))
    assert response.status_code == 405
