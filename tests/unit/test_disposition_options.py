"""GET /api/v1/campaign/<campaign>/dispositionOptions/[<externalSystem>/] (contract §2.5)."""
import pytest

NOT_FOUND_ES = {"detail": "No encontrado."}
NOT_FOUND_EN = {"detail": "Not found."}


def _url(campaign, system=None):
    if system is None:
        return f"/api/v1/campaign/{campaign}/dispositionOptions/"
    return f"/api/v1/campaign/{campaign}/dispositionOptions/{system}/"


@pytest.fixture
def setup(make):
    agent = make.agent()
    system = make.external_system()
    campaign = make.campaign(external_system=system, external_id="camp-9")
    sale = make.option(campaign, "Venta")
    no = make.option(campaign, "No interesado", hidden=True)
    make.option(make.campaign(), "Otra campaña")
    expected = [{"id": sale.id, "name": "Venta", "hidden": False},
                {"id": no.id, "name": "No interesado", "hidden": True}]
    return agent, system, campaign, expected


@pytest.mark.parametrize("slash", [True, False])
def test_internal_id_lists_every_option_without_membership(client, make, setup, slash):
    agent, _, campaign, expected = setup
    url = _url(campaign.id)
    response = client.get(url if slash else url.rstrip("/"), headers=make.headers(agent))
    assert response.status_code == 200
    assert response.get_json() == expected
    assert all(list(item) == ["id", "name", "hidden"] for item in response.get_json())


@pytest.mark.parametrize("slash", [True, False])
def test_external_ids(client, make, setup, slash):
    agent, system, _, expected = setup
    url = _url("camp-9", system.id)
    response = client.get(url if slash else url.rstrip("/"), headers=make.headers(agent))
    assert response.status_code == 200
    assert response.get_json() == expected


def test_campaign_without_options_is_an_empty_list(client, make):
    agent = make.agent()
    campaign = make.campaign(state="inactive")
    response = client.get(_url(campaign.id), headers=make.headers(agent))
    assert response.status_code == 200
    assert response.get_json() == []


@pytest.mark.parametrize("which", ["unknown", "non_integer", "negative", "huge", "external_as_internal"])
def test_internal_misses_are_404(client, make, setup, which):
    agent, _, campaign, _ = setup
    campaign_ref = {"unknown": campaign.id + 1000, "non_integer": "abc", "negative": "-1",
                    "huge": "9" * 30, "external_as_internal": "camp-9"}[which]
    response = client.get(_url(campaign_ref), headers=make.headers(agent))
    assert response.status_code == 404
    assert response.get_json() == NOT_FOUND_ES
    response = client.get(_url(campaign_ref), headers=make.headers(agent, lang="en"))
    assert response.get_json() == NOT_FOUND_EN


def test_external_misses_are_404(client, make, setup):
    agent, system, campaign, _ = setup
    other = make.external_system()
    for campaign_ref, system_ref in (("camp-9", system.id + 1000), ("camp-9", "abc"),
                                     ("camp-9", other.id), ("nope", system.id),
                                     (campaign.id, system.id)):
        response = client.get(_url(campaign_ref, system_ref), headers=make.headers(agent))
        assert response.status_code == 404, (campaign_ref, system_ref)
        assert response.get_json() == NOT_FOUND_ES


@pytest.mark.parametrize("role", ["Administrador", "Gerente", "Supervisor", "Referente"])
def test_only_agents(client, make, setup, role):
    _, _, campaign, _ = setup
    user = make.user(role)
    response = client.get(_url(campaign.id), headers=make.headers(user))
    assert response.status_code == 403
    assert response.get_json() == {"detail": "Usted no tiene permiso para realizar esta acción."}
    response = client.get(_url(campaign.id), headers=make.headers(user, lang="en"))
    assert response.get_json() == {"detail": "You do not have permission to perform this action."}


def test_no_credentials_and_wrong_method(client, make, setup):
    agent, _, campaign, _ = setup
    response = client.get(_url(campaign.id))
    assert response.status_code == 403
    assert response.get_json() == {"detail": "Las credenciales de autenticación no se proveyeron."}
    response = client.post(_url(campaign.id), headers=make.headers(agent))
    assert response.status_code == 405
    assert response.get_json() == {"detail": 'Método "POST" no permitido.'}
