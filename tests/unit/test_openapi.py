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
