"""Every error body has one shape, ``{"detail": "<sentence naming the input>"}``; a
validation error adds the validator's list under ``errors``, and the OpenAPI document
says so."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from config.endpoints import resolve_endpoints
from devstack.stack import Stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[TestClient]:
    from api.app import create_app

    token = resolve_endpoints(stack.settings).api_token
    settings = stack.settings.model_copy(update={"search_warm_on_start": False})
    with TestClient(create_app(settings)) as http:
        http.headers["Authorization"] = f"Bearer {token}"
        yield http


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "named"),
    [
        ("GET", "/v1/search", {"params": {"q": "x", "k": "many"}}, 422, "k: "),
        ("GET", "/v1/search", {"params": {"k": "3"}}, 422, "q: Field required"),
        ("GET", "/v1/search", {"params": {"q": "x", "lang": "klingon"}}, 422, "lang: 'klingon'"),
        ("POST", "/v1/jobs", {"json": {}}, 422, "body.source: Field required"),
        ("POST", "/v1/jobs", {"json": {"source": "htps:/broken url"}}, 422, "git URL"),
        ("GET", "/v1/jobs/0123abcd-0000-4000-8000-000000000000", {}, 404, "not found"),
        ("GET", "/v1/jobs", {"params": {"limit": "0"}}, 422, "limit: "),
    ],
)
def test_every_error_is_a_sentence_naming_the_input(
    client: TestClient, method: str, path: str, kwargs: dict[str, object], status: int, named: str
) -> None:
    response = client.request(method, path, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body["detail"], str) and named in body["detail"], body
    if status == 422 and "errors" in body:
        assert isinstance(body["errors"], list) and body["errors"]


def test_the_openapi_document_describes_the_422_body_as_sent(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()["components"]["schemas"]["HTTPValidationError"]
    assert schema["properties"]["detail"]["type"] == "string"
    assert schema["properties"]["errors"]["type"] == "array"
