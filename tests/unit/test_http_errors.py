"""The spec's JSON error bodies, including the answer to an unexpected error."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from starlette.requests import Request

from portside.http.errors import error_response, unexpected_error


def test_error_response_shape() -> None:
    response = error_response("BLOB_UNKNOWN", "blob x is not here", 404, detail={"digest": "x"})
    assert response.status_code == 404
    assert json.loads(response.body) == {
        "errors": [{"code": "BLOB_UNKNOWN", "message": "blob x is not here", "detail": {"digest": "x"}}]
    }


def test_error_response_without_detail() -> None:
    assert json.loads(error_response("UNSUPPORTED", "no", 400).body) == {
        "errors": [{"code": "UNSUPPORTED", "message": "no"}]
    }


def test_unexpected_error_is_a_spec_error_with_the_api_version(caplog: pytest.LogCaptureFixture) -> None:
    request = Request({"type": "http", "method": "PUT", "path": "/v2/octo/hello/manifests/v1", "headers": []})
    with caplog.at_level(logging.ERROR, logger="portside.errors"):
        response = asyncio.run(unexpected_error(request, RuntimeError("disk on fire")))
    assert response.status_code == 500
    assert response.headers["docker-distribution-api-version"] == "registry/2.0"
    assert json.loads(response.body) == {
        "errors": [{"code": "UNKNOWN", "message": "internal error; the server log has the details"}]
    }
    assert "unhandled error in PUT /v2/octo/hello/manifests/v1" in caplog.text
    assert "disk on fire" in caplog.text
