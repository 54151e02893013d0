"""HTTPS with --tls-cert/--tls-key, checked by skopeo trusting a self-signed certificate."""

from __future__ import annotations

import json
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.blobs import push_image
from tests.support.server import Server, running_server


@pytest.fixture
def tls_registry(tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    certs = tmp_path / "certs"
    certs.mkdir()
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(certs / "key.pem"),
            "-out",
            str(certs / "ca.crt"),
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    args = ["--tls-cert", str(certs / "ca.crt"), "--tls-key", str(certs / "key.pem")]
    with running_server(tmp_path, "tls", extra_args=args, scheme="https") as server:
        yield server, certs


@pytest.mark.e2e
def test_skopeo_pulls_over_https_with_a_trusted_certificate(tls_registry: tuple[Server, Path], tmp_path: Path) -> None:
    server, certs = tls_registry
    # skopeo reads *.crt in --cert-dir as CAs; the key must not sit beside them.
    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / "ca.crt").write_bytes((certs / "ca.crt").read_bytes())
    with server.client(verify=ssl.create_default_context(cafile=certs / "ca.crt")) as client:
        digest, _ = push_image(client, "octo/tls", "v1", seed="tls")
        assert client.get("/v2/octo/tls/manifests/v1").headers["docker-content-digest"] == digest

    ref = f"docker://{server.host}/octo/tls:v1"
    creds = ":".join(server.admin)
    inspected = subprocess.run(
        ["skopeo", "inspect", "--cert-dir", str(trust), "--creds", creds, ref],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert inspected.returncode == 0, inspected.stderr
    assert json.loads(inspected.stdout)["Digest"] == digest

    copied = subprocess.run(
        ["skopeo", "copy", "--src-cert-dir", str(trust), "--src-creds", creds, ref, f"dir:{tmp_path / 'out'}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert copied.returncode == 0, copied.stderr
    assert (tmp_path / "out" / "manifest.json").exists()

    untrusted = subprocess.run(
        ["skopeo", "inspect", "--creds", creds, ref], capture_output=True, text=True, timeout=120
    )
    assert untrusted.returncode != 0
    assert "certificate" in untrusted.stderr
