"""Schemathesis against the packages API: generated requests, no 5xx, answers as documented."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.blobs import push_image
from tests.support.server import OUTPUT, running_server

# Every check that concerns what the server answers; those that judge the API's design choices
# (e.g. whether any string is a valid package name) are not about correctness here.
CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    )
)


def test_generated_requests_get_documented_answers(tmp_path: Path) -> None:
    # Generated requests include bad credentials; the failure limit would soon answer 429 to all.
    env = {"PORTSIDE_AUTH_MAX_FAILURES": "1000000"}
    with running_server(tmp_path, "schemathesis", env=env) as server:
        with server.client() as client:
            push_image(client, "admin/fuzz", "v1")
            push_image(client, "admin/tools/fuzz", "v1", seed="nested")
        _, token = server.admin
        command = [
            shutil.which("schemathesis") or str(Path(sys.executable).parent / "schemathesis"),
            "run",
            f"{server.url}/api/v3/openapi.json",
            "--url",
            f"{server.url}/api/v3",
            "--header",
            f"Authorization: Bearer {token}",
            "--checks",
            CHECKS,
            # Revoking the fuzzer's own token or deleting its user would leave only 401s to test.
            "--exclude-path-regex",
            r"tokens/\{token_id\}$|^/portside/users/\{username\}$",
            "--max-examples",
            "30",
            "--generation-deterministic",
            "--report",
            "junit",
            "--report-dir",
            str(OUTPUT / "schemathesis"),
        ]
        # cwd: schemathesis keeps a cache directory where it runs.
        result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=OUTPUT)
        log = OUTPUT / "schemathesis" / "output.txt"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(result.stdout + result.stderr)
        assert result.returncode == 0, f"schemathesis found problems (full output in {log}):\n{result.stdout[-6000:]}"
        assert "passed" in result.stdout.lower()
        assert "Authentication failed" not in result.stdout, "the fuzzer lost its credentials; it tested little"
