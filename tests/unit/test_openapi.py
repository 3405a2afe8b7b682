"""The OpenAPI document: valid, served, and covering every endpoint of the contract."""
import pytest
from openapi_spec_validator import validate

CONTRACT_OPERATIONS = [
    ("post", "/api/v1/login"),
    ("post", "/api/v1/campaign/database_metadata/"),
    ("post", "/api/v1/new_contact/"),
    ("post", "/api/v1/makeCall/"),
    ("get", "/api/v1/campaign/{campaign}/dispositionOptions/"),
    ("get", "/api/v1/campaign/{campaign}/dispositionOptions/{externalSystem}/"),
    ("get", "/api/v1/disposition/"),
    ("post", "/api/v1/disposition/"),
    ("get", "/api/v1/disposition/{id}/"),
    ("put", "/api/v1/disposition/{id}/"),
    ("post", "/api/v1/new_contact/disposition/"),
    ("post", "/api/v1/asterisk_login/"),
    ("post", "/api/v1/asterisk_logout/"),
    ("post", "/api/v1/asterisk_pause/"),
    ("post", "/api/v1/asterisk_unpause/"),
    ("get", "/api/v1/sip/credentials/agent/"),
    ("post", "/api/v1/hangupCall/"),
]


@pytest.fixture
def spec(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def test_spec_is_valid_openapi_3(spec):
    validate(spec)
    assert spec["openapi"].startswith("3.")


def _find(spec, path):
    """Paths may be documented with or without their trailing slash."""
    for candidate in (path, path.rstrip("/"), path.rstrip("/") + "/"):
        if candidate in spec["paths"]:
            return spec["paths"][candidate]
    return None


@pytest.mark.parametrize("method,path", CONTRACT_OPERATIONS)
def test_every_contract_operation_is_documented(spec, method, path):
    item = _find(spec, path)
    assert item is not None, f"{path} missing from the OpenAPI document"
    operation = item.get(method)
    assert operation is not None, f"{method.upper()} {path} missing"
    assert operation.get("summary"), "each operation says what it does"
    assert "200" in operation["responses"] or "201" in operation["responses"]
    if method in ("post", "put") and path != "/api/v1/hangupCall/":
        body = operation.get("requestBody", {}).get("content", {})
        assert "application/json" in body and "application/x-www-form-urlencoded" in body


def test_swagger_ui_is_served_locally(client):
    page = client.get("/docs")
    assert page.status_code == 200
    assert b"swagger-ui" in page.data
    assert client.get("/swagger-ui/swagger-ui-bundle.js").status_code == 200


def test_every_operation_but_login_and_health_needs_a_token(spec):
    assert spec["security"] == [{"bearer": []}]
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    methods = {"get", "post", "put", "patch", "delete"}
    open_operations = sorted(path for path, item in spec["paths"].items()
                             for method, operation in item.items()
                             if method in methods and operation.get("security") == [])
    assert open_operations == ["/api/v1/health/", "/api/v1/login/"]


def test_hot_paths_answer_exactly_what_their_schema_dumps(client, make):
    """The hot paths answer their services' bodies without flask-smorest's dump
    (apidoc.as_documented): each body must be what the documented schema would give, key
    order included."""
    from schemas.campaigns import DatabaseMetadataResponseSchema, DispositionOptionSchema
    from schemas.contacts import NewContactResponseSchema
    from schemas.dispositions import DispositionSchema, NewContactDispositionSchema

    agent = make.agent()
    campaign = make.campaign(agents=[agent], options=["Venta", "Otra"])
    headers = make.headers(agent, "en")

    def check(response, status, schema):
        assert response.status_code == status, response.get_json()
        body = response.get_json()
        dumped = schema.dump(body)
        assert body == dumped and list(body) == list(dumped) if isinstance(body, dict) \
            else [list(item) for item in body] == [list(item) for item in dumped], body
        return body

    check(client.post("/api/v1/campaign/database_metadata/", headers=headers,
                      json={"idCampaign": campaign.id}), 200, DatabaseMetadataResponseSchema())
    options = check(client.get(f"/api/v1/campaign/{campaign.id}/dispositionOptions/",
                               headers=headers), 200, DispositionOptionSchema(many=True))
    assert options == DispositionOptionSchema(many=True).dump(options)
    contact = check(client.post("/api/v1/new_contact/", headers=headers, json={
        "idCampaign": campaign.id, "TELEFONO": "3511111111"}), 200, NewContactResponseSchema())
    rated = check(client.post("/api/v1/disposition/", headers=headers, json={
        "idContact": contact["id"], "idDispositionOption": options[0]["id"], "callid": "1.2"}),
        201, DispositionSchema())
    check(client.put(f"/api/v1/disposition/{rated['id']}/", headers=headers, json={
        "idContact": contact["id"], "idDispositionOption": options[1]["id"]}), 200,
        DispositionSchema())
    check(client.post("/api/v1/new_contact/disposition/", headers=headers, json={
        "idDispositionOption": options[0]["id"], "phone": "3512222222", "comments": "ok"}),
        201, NewContactDispositionSchema())
