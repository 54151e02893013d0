"""S3 faults as operating conditions: the object store killed (kill -9) in the middle of a push,
then brought back; and `portside serve` refusing an object store it cannot use.

While the store is down every push is the spec's 503 UNAVAILABLE with Retry-After and a message a
person can act on (never a 500); the log says what happened without a traceback; /readyz says "not
ready". When the store is back the same Portside process serves again, the same pushes succeed, and
every byte acknowledged before the kill is intact. A real SeaweedFS of this module's own (these
tests kill it) sits behind real Portside processes.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import s3_env, s3_url
from tests.http.helpers import OCI_MANIFEST, assert_error, start_upload, upload_range
from tests.support.blobs import digest_of, image_manifest, push_blob
from tests.support.seaweed import SeaweedS3
from tests.support.server import OUTPUT, Server, free_port, running_server

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """A SeaweedFS of this module's own: its tests kill it, which must harm no other test."""
    log = OUTPUT / "logs" / "seaweed-s3-faults.log"
    log.unlink(missing_ok=True)
    store = SeaweedS3(tmp_path_factory.mktemp("seaweed-faults"), log)
    store.start()
    try:
        yield store
    finally:
        store.stop(timeout=3)


@pytest.fixture
def live_s3(s3: SeaweedS3) -> SeaweedS3:
    """The module's store, running (a test that failed half-way may have left it killed)."""
    if not s3.running:
        s3.start()
    return s3


def _no_crash(response: httpx.Response) -> None:
    """The object store being down is "later" (503), never a 500 or any other 5xx."""
    request = response.request
    assert response.status_code < 500 or response.status_code == 503, (
        f"{request.method} {request.url} answered {response.status_code}"
    )


def make_client(server: Server) -> httpx.Client:
    return server.client(event_hooks={"response": [_no_crash]})


@contextmanager
def _portside(tmp: Path, s3: SeaweedS3, name: str, *, redirect: bool = True) -> Iterator[tuple[Server, str]]:
    """A Portside (one worker) on a prefix of its own; yields it and its store's description.

    The log's name is unique too: the suite may be running twice at once on this machine, and a
    server restarted by the other run would write into a log of the same name."""
    prefix = f"{name}-{uuid.uuid4().hex[:8]}"
    env = {
        **s3_env(s3),
        "PORTSIDE_STORAGE_URL": s3_url(s3, prefix),
        "PORTSIDE_STORAGE_REDIRECT": "true" if redirect else "false",
    }
    with running_server(tmp, prefix, extra_args=["--workers", "1"], env=env) as server:
        yield server, f"s3://{s3.bucket}/{prefix} at {s3.endpoint}"


def _data(seed: object, size: int) -> bytes:
    """`size` bytes that differ everywhere from any other seed's (so a misplaced part shows)."""
    block = hashlib.sha256(f"{seed}".encode()).digest()
    return (block * (size // len(block) + 1))[:size]


def _killing(data: bytes, s3: SeaweedS3, after: int) -> Iterator[bytes]:
    """A request body that kill -9s the object store once `after` bytes have gone out."""
    for start in range(0, len(data), MiB):
        if start == after:
            s3.kill()
        yield data[start : start + MiB]


def _post(client: httpx.Client, name: str, data: bytes, body: bytes | Iterator[bytes] | None = None) -> httpx.Response:
    """A monolithic upload (POST ?digest=) of `data`, sent as `body` if given."""
    return client.post(
        f"/v2/{name}/blobs/uploads/",
        params={"digest": digest_of(data)},
        content=data if body is None else body,
        headers={"Content-Length": str(len(data)), "Content-Type": "application/octet-stream"},
    )


def _patch(client: httpx.Client, upload: str, offset: int, data: bytes | Iterator[bytes], size: int) -> httpx.Response:
    return client.patch(
        upload,
        content=data,
        headers={
            "Content-Range": f"{offset}-{offset + size - 1}",
            "Content-Length": str(size),
            "Content-Type": "application/octet-stream",
        },
    )


def _complete(client: httpx.Client, upload: str, blob: bytes, final: bytes) -> httpx.Response:
    """The PUT that ends an upload of `blob`, carrying its `final` bytes."""
    return client.put(upload, params={"digest": digest_of(blob)}, content=final)


def _assert_unreachable(response: httpx.Response, s3: SeaweedS3) -> None:
    """The spec's error for a store that is down: "later", in words a person can act on."""
    error = assert_error(response, 503, "UNAVAILABLE", "object storage", "try again")
    assert int(response.headers["retry-after"]) > 0
    # Where the store is and how to reach it are the operator's business, not the client's.
    assert s3.endpoint not in error["message"]
    assert s3.secret_key not in response.text


def _download(client: httpx.Client, name: str, digest: str, *, redirect: bool) -> bytes:
    """A blob's bytes as a client gets them: a 307 to a presigned URL, or streamed by Portside."""
    response = client.get(f"/v2/{name}/blobs/{digest}")
    if not redirect:
        assert response.status_code == 200, response.text
        return response.content
    assert response.status_code == 307, response.text
    with httpx.Client(trust_env=False, timeout=60) as plain:
        got = plain.get(response.headers["location"])
    assert got.status_code == 200, got.text
    return got.content


def _labelled_config(seed: str) -> bytes:
    labels = {"org.opencontainers.image.description": f"image {seed}"}
    return json.dumps({"architecture": "amd64", "os": "linux", "config": {"Labels": labels}, "seed": seed}).encode()


def _put_manifest(client: httpx.Client, name: str, tag: str, manifest: bytes) -> httpx.Response:
    return client.put(f"/v2/{name}/manifests/{tag}", content=manifest, headers={"Content-Type": OCI_MANIFEST})


def _log(server: Server) -> str:
    return server.log_path.read_text(errors="replace")


@pytest.mark.parametrize(
    ("redirect", "killed_during"),
    [(True, "monolithic POST"), (False, "chunked PATCH")],
    ids=["redirect-killed-during-post", "stream-killed-during-patch"],
)
def test_a_store_killed_mid_push_is_503_and_pushes_succeed_once_it_is_back(
    tmp_path: Path, live_s3: SeaweedS3, redirect: bool, killed_during: str
) -> None:
    s3 = live_s3
    name = "t/s3-kill"
    label = "s3-faults-" + ("redirect" if redirect else "stream")
    with _portside(tmp_path, s3, label, redirect=redirect) as (server, description):
        with make_client(server) as client:
            # -- acknowledged before the kill: every way a blob gets stored, and an image ----------
            acknowledged: dict[str, bytes] = {}
            for data in (_data("small", 1000), _data("multipart", 9 * MiB)):  # one PUT; a direct multipart
                acknowledged[push_blob(client, name, data)] = data
            staged = _data("staged", 10 * MiB)  # staged parts and a tail, assembled on the PUT
            upload = start_upload(client, name)
            assert _patch(client, upload, 0, staged[: 9 * MiB], 9 * MiB).status_code == 202
            done = client.put(upload, params={"digest": digest_of(staged)}, content=staged[9 * MiB :])
            assert done.status_code == 201, done.text
            acknowledged[digest_of(staged)] = staged
            layer = _data("layer", 3 * MiB)
            config_before, config_after = _labelled_config("before"), _labelled_config("after")
            for data in (layer, config_before, config_after):
                acknowledged[push_blob(client, name, data)] = data
            manifest_before = image_manifest(config_before, [layer])
            assert _put_manifest(client, name, "before", manifest_before).status_code == 201
            # Uploads in progress: one the PATCH continues, one the PUT completes.
            patching, patched = start_upload(client, name), _data("patched", 15 * MiB)
            assert _patch(client, patching, 0, patched[: 3 * MiB], 3 * MiB).status_code == 202
            completing, completed = start_upload(client, name), _data("completed", 3 * MiB)
            assert _patch(client, completing, 0, completed[: 2 * MiB], 2 * MiB).status_code == 202
        # A fresh process has nothing cached: the manifest PUT below must read its config from S3.
        server.stop()
        server.start()
        assert server.process is not None
        pid = server.process.pid
        with make_client(server) as client:
            assert client.get("/readyz").status_code == 200
            monolithic = _data("monolithic", 20 * MiB)
            rest, final = patched[3 * MiB :], completed[2 * MiB :]
            manifest_after = image_manifest(config_after, [layer])

            # -- the kill, in the middle of a request that is sending parts to the store ----------
            if killed_during == "monolithic POST":
                response = _post(client, name, monolithic, _killing(monolithic, s3, after=10 * MiB))
            else:
                response = _patch(client, patching, 3 * MiB, _killing(rest, s3, after=6 * MiB), len(rest))
            assert not s3.running
            _assert_unreachable(response, s3)

            # -- every kind of push while it is down ----------------------------------------------
            _assert_unreachable(_post(client, name, monolithic), s3)
            _assert_unreachable(_patch(client, patching, 3 * MiB, rest, len(rest)), s3)
            _assert_unreachable(_complete(client, completing, completed, final), s3)
            _assert_unreachable(_put_manifest(client, name, "after", manifest_after), s3)
            # A pull that needs the store is refused the same way; what the database knows still answers.
            _assert_unreachable(client.get(f"/v2/{name}/blobs/{digest_of(layer)}"), s3)
            assert client.head(f"/v2/{name}/blobs/{digest_of(layer)}").status_code == 200
            assert client.get(f"/v2/{name}/manifests/before").content == manifest_before
            # The sessions stay where they were acknowledged: the client may retry them.
            assert upload_range(client, patching) == f"0-{3 * MiB - 1}"
            assert upload_range(client, completing) == f"0-{2 * MiB - 1}"
            # Alive, not ready: a balancer stops sending pushes here.
            assert client.get("/healthz").status_code == 200
            ready = client.get("/readyz")
            assert ready.status_code == 503, ready.text
            assert ready.json()["status"] == "not ready"
            assert ready.json()["checks"]["database"] == "ok"
            assert ready.json()["checks"]["storage"].startswith(f"object store {description}: cannot connect to ")

            # -- back: the same process, the same pushes ------------------------------------------
            s3.start()
            ready = client.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["checks"] == {"database": "ok", "storage": "ok"}
            assert server.process.pid == pid and server.process.poll() is None  # not restarted

            retried = _post(client, name, monolithic)
            assert retried.status_code == 201, retried.text
            acknowledged[digest_of(monolithic)] = monolithic
            assert upload_range(client, patching) == f"0-{3 * MiB - 1}"
            again = _patch(client, patching, 3 * MiB, rest, len(rest))
            assert again.status_code == 202, again.text
            assert again.headers["range"] == f"0-{len(patched) - 1}"
            done = client.put(patching, params={"digest": digest_of(patched)})
            assert done.status_code == 201, done.text
            acknowledged[digest_of(patched)] = patched
            done = _complete(client, completing, completed, final)
            assert done.status_code == 201, done.text
            acknowledged[digest_of(completed)] = completed
            assert _put_manifest(client, name, "after", manifest_after).status_code == 201

            # -- nothing acknowledged is damaged, before the kill or after ------------------------
            for digest, data in acknowledged.items():
                got = _download(client, name, digest, redirect=redirect)
                assert len(got) == len(data) and got == data, f"{digest}: {len(got)} bytes differ from {len(data)}"
            assert client.get(f"/v2/{name}/manifests/before").content == manifest_before
            assert client.get(f"/v2/{name}/manifests/after").content == manifest_after
    log = _log(server)
    assert "Traceback" not in log
    # Said at ERROR, naming the store, where it is and what happened; then its end. (That it is said
    # once per outage is test_an_outage_is_logged_once_not_once_per_request's.)
    assert f"ERROR portside.storage: object store {description}: cannot connect to {s3.endpoint}/" in log
    assert f"object store {description} unavailable: resolved" in log


def test_a_chunked_upload_begun_before_the_kill_goes_on_from_its_acknowledged_offset(
    tmp_path: Path, live_s3: SeaweedS3
) -> None:
    s3 = live_s3
    name = "t/s3-resume"
    data = _data("resumed", 19 * MiB)
    first, second = data[: 9 * MiB], data[9 * MiB :]  # a staged part and a tail; then the rest
    with _portside(tmp_path, s3, "s3-faults-resume") as (server, _), make_client(server) as client:
        upload = start_upload(client, name)
        response = _patch(client, upload, 0, first, len(first))
        assert response.status_code == 202, response.text
        assert response.headers["range"] == f"0-{len(first) - 1}"
        _assert_unreachable(_patch(client, upload, len(first), _killing(second, s3, after=5 * MiB), len(second)), s3)
        assert upload_range(client, upload) == f"0-{len(first) - 1}"  # from the database, store or no store
        s3.start()
        assert upload_range(client, upload) == f"0-{len(first) - 1}"
        response = _patch(client, upload, len(first), second, len(second))
        assert response.status_code == 202, response.text
        assert response.headers["range"] == f"0-{len(data) - 1}"
        done = client.put(upload, params={"digest": digest_of(data)})
        assert done.status_code == 201, done.text
        assert done.headers["docker-content-digest"] == digest_of(data)
        got = _download(client, name, digest_of(data), redirect=True)
        assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()
        assert got == data
    assert "Traceback" not in _log(server)


# -- refusing to start, and printing no secret ---------------------------------------------------


def _cli_env(env: dict[str, str]) -> dict[str, str]:
    """This environment without its AWS and Portside settings, plus `env`."""
    clean = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "PORTSIDE_"))}
    return {**clean, **env}


def _portside_cli(tmp: Path, *args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "portside", *args, "--data-dir", str(tmp / "data")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=_cli_env(env),
        start_new_session=True,  # if it served after all, its workers go with it
    )


def _finish(process: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str, str]:
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        raise AssertionError(f"still running after {timeout}s (it should have refused): {stderr}") from None
    return process.returncode, stdout, stderr


def test_serve_refuses_an_object_store_it_cannot_use(tmp_path: Path, live_s3: SeaweedS3) -> None:
    """Unreachable, a wrong secret key, an unknown access key, a missing bucket: exit 2 and one line
    that names the store and what to fix, before anything serves. (The four run at once.)"""
    s3 = live_s3
    closed = f"http://127.0.0.1:{free_port()}"  # bound and closed again: nothing listens there
    missing = f"no-such-bucket-{uuid.uuid4().hex[:8]}"
    wrong_secret = "wrong-" + s3.secret_key[::-1]
    cases = {  # case: (bucket, endpoint, environment, what the line must say)
        "unreachable": (s3.bucket, closed, s3_env(s3), f"cannot connect to {closed}"),
        "wrong secret key": (
            s3.bucket,
            s3.endpoint,
            s3_env(s3) | {"AWS_SECRET_ACCESS_KEY": wrong_secret},
            "credentials",
        ),
        "unknown access key": (
            s3.bucket,
            s3.endpoint,
            s3_env(s3) | {"AWS_ACCESS_KEY_ID": "PSUNKNOWN" + uuid.uuid4().hex[:11].upper()},
            "credentials",
        ),
        "missing bucket": (missing, s3.endpoint, s3_env(s3), "does not exist"),
    }
    ports = {case: free_port() for case in cases}
    running = {
        case: _portside_cli(
            tmp_path / case.replace(" ", "-"),
            "serve",
            "--port",
            str(ports[case]),
            "--storage-url",
            f"s3://{bucket}/refused?endpoint={endpoint}&region={s3.region}",
            env=env,
        )
        for case, (bucket, endpoint, env, _) in cases.items()
    }
    for case, process in running.items():
        bucket, endpoint, _, says = cases[case]
        code, stdout, stderr = _finish(process)
        assert code == 2, (case, code, stdout, stderr)
        lines = stderr.strip().splitlines()
        assert len(lines) == 1, (case, stderr)
        assert lines[0].startswith(f"error: cannot use blob storage s3://{bucket}/refused at {endpoint}: "), (
            case,
            lines,
        )
        assert says in lines[0], (case, lines)
        for secret in (s3.secret_key, wrong_secret):
            assert secret not in stdout + stderr, case
        with pytest.raises(httpx.ConnectError):  # it never served
            httpx.get(f"http://127.0.0.1:{ports[case]}/healthz", timeout=2)


def test_config_show_prints_no_s3_credential(tmp_path: Path, s3: SeaweedS3) -> None:
    url = s3_url(s3, "shown")
    text, as_json = (
        _portside_cli(tmp_path, "config", "show", "--storage-url", url, *extra, env=s3_env(s3))
        for extra in ([], ["--json"])
    )
    for process in (text, as_json):
        code, stdout, stderr = _finish(process)
        assert code == 0, stderr
        assert url in stdout  # the setting itself is shown
        assert s3.secret_key not in stdout + stderr
        assert s3.access_key not in stdout + stderr
        if process is as_json:
            assert json.loads(stdout)["storage_url"] == url


def test_config_show_refuses_credentials_put_in_the_storage_url(tmp_path: Path, s3: SeaweedS3) -> None:
    url = f"s3://{s3.access_key}:{s3.secret_key}@{s3.bucket}/shown?endpoint={s3.endpoint}&region={s3.region}"
    code, stdout, stderr = _finish(_portside_cli(tmp_path, "config", "show", "--storage-url", url, env={}))
    assert code == 2, stderr
    assert "must not carry credentials" in stderr
    assert s3.secret_key not in stdout + stderr
    assert s3.access_key not in stdout + stderr


# -- last: it leaves the store down ---------------------------------------------------------------


def test_an_outage_is_logged_once_not_once_per_request(tmp_path: Path, live_s3: SeaweedS3) -> None:
    s3 = live_s3
    name = "t/s3-log"
    with _portside(tmp_path, s3, "s3-faults-log") as (server, description), make_client(server) as client:
        completing, completed = start_upload(client, name), _data("log", 2 * MiB)
        assert _patch(client, completing, 0, completed[:MiB], MiB).status_code == 202
        s3.kill()
        small = _data("log-small", 1000)
        for _ in range(3):
            _assert_unreachable(_post(client, name, small), s3)
            _assert_unreachable(_complete(client, completing, completed, completed[MiB:]), s3)
    # The store stays down: the module's last test (its end, "resolved", is the first test's).
    log = _log(server)
    assert "Traceback" not in log
    assert f"object store {description} unavailable: resolved" not in log, log
    assert log.count(f"object store {description}: ") == 1, log
