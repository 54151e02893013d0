"""How the server presents itself: base URL behind proxies, access log, health, configuration."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.http.helpers import raw_request
from tests.support.blobs import digest_of
from tests.support.server import Server, running_server

FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "registry.example.test"}


def _upload_location(server: Server) -> str:
    return httpx.post(
        f"{server.url}/v2/octo/proxy/blobs/uploads/", headers={**FORWARDED, "Authorization": server.basic_auth}
    ).headers["location"]


def test_forwarded_headers_are_ignored_from_untrusted_clients(registry: Server) -> None:
    assert _upload_location(registry).startswith(f"http://{registry.host}/v2/octo/proxy/blobs/uploads/")


def test_forwarded_headers_are_honoured_from_trusted_proxies(tmp_path: Path) -> None:
    env = {"PORTSIDE_TRUSTED_PROXIES": "127.0.0.0/8"}
    with running_server(tmp_path, "trusted-proxy", env=env) as server:
        location = _upload_location(server)
    assert location.startswith("https://registry.example.test/v2/octo/proxy/blobs/uploads/")


def test_json_access_log_has_one_line_per_request(tmp_path: Path) -> None:
    with running_server(tmp_path, "json-log", extra_args=["--log-format", "json"]) as server:
        httpx.get(f"{server.url}/v2/", headers={"Authorization": "Bearer do-not-log-me"})
        httpx.get(f"{server.url}/v2/", headers={"Authorization": server.basic_auth})
        httpx.get(f"{server.url}/v2/octo/nothing/tags/list", headers={"Authorization": server.basic_auth})
    text = server.log_path.read_text()
    assert "do-not-log-me" not in text
    assert text.count(server.admin[1]) == 1  # printed once, on first start, by design; never logged
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    by_path = {line["path"]: line for line in lines}
    assert [line["status"] for line in lines if line["path"] == "/v2/"] == [401, 200]
    assert by_path["/v2/"]["method"] == "GET"
    assert by_path["/v2/octo/nothing/tags/list"]["status"] == 404
    assert {"bytes", "duration_ms", "client"} <= by_path["/v2/"].keys()


def test_healthz(registry: Server) -> None:
    response = httpx.get(f"{registry.url}/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def _portside(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "portside", *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_config_show_merges_file_environment_and_flags(tmp_path: Path) -> None:
    config = tmp_path / "portside.toml"
    config.write_text('port = 6000\nlog_format = "json"\nmax_manifest_bytes = 1000\n')
    env = {"PATH": "/usr/bin:/bin", "PORTSIDE_PORT": "7000"}
    result = _portside("config", "show", "--json", "--config", str(config), "--data-dir", str(tmp_path / "d"), env=env)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["port"] == 7000  # the environment beats the file
    assert shown["log_format"] == "json"  # from the file
    assert shown["max_manifest_bytes"] == 1000
    assert shown["data_dir"] == str(tmp_path / "d")  # the flag
    assert shown["effective_database_url"] == f"sqlite:///{tmp_path / 'd' / 'portside.db'}"


def test_bad_configuration_is_a_one_line_error(tmp_path: Path) -> None:
    result = _portside("config", "show", env={"PATH": "/usr/bin:/bin", "PORTSIDE_PORT": "seventy"})
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: invalid setting port")
    missing = _portside("config", "show", "--config", str(tmp_path / "nope.toml"), env={"PATH": "/usr/bin:/bin"})
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr


def test_an_answer_before_a_large_body_is_read_closes_the_connection(registry: Server) -> None:
    """A push refused before its body is read (here: a manifest larger than allowed, by its declared
    length, too large to be read and dropped first) must not leave the client a connection that
    looks reusable: the server says close."""
    head = (
        "PUT /v2/t/early-answer/manifests/v1 HTTP/1.1\r\n"
        f"Host: {registry.host}\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\n"
        f"Content-Length: {65 * 1024 * 1024}\r\n"
    )
    sock = raw_request(registry, head, b"{" * 1000, close=False)
    try:
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            assert chunk, "the server closed the connection without an answer"
            answer += chunk
    finally:
        sock.close()
    status_line, *header_lines = answer.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")
    assert status_line.startswith("HTTP/1.1 413"), status_line
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
    assert headers["connection"] == "close"
    # Requests whose bodies were read keep their connection.
    with registry.client() as client:
        kept = client.post(
            "/v2/t/early-answer/blobs/uploads/", content=b"x" * 1000, params={"digest": digest_of(b"x" * 1000)}
        )
        assert kept.status_code == 201
        assert kept.headers.get("connection") != "close"


def test_a_refused_body_is_read_first_and_the_connection_kept(registry: Server) -> None:
    """A proxy that streams request bodies (nginx with request buffering off, as deploy/nginx/
    ships) answers 502 of its own when the registry answers and closes while it is still sending: a
    refused body of up to 64 MiB is read and dropped first, then answered, on a connection kept."""
    body = os.urandom(8 * 1024 * 1024)
    with registry.client() as client:
        upload = client.post("/v2/t/refused-body/blobs/uploads/").headers["location"]
        refused = client.patch(
            upload,
            content=body,
            headers={"Content-Type": "application/octet-stream", "Content-Range": f"5-{len(body) + 4}"},
        )
        assert refused.status_code == 416, refused.text
        assert refused.headers["range"] == "0-0"
        assert refused.headers.get("connection") != "close"
        assert client.get(upload).status_code == 204  # the same connection, still in step
