"""Debian's nginx in front of replicas, running the repository's own site (deploy/nginx/).

The site file is used as shipped, with only what a user edits replaced: the replicas' addresses, the
listening ports (loopback) and the certificate's paths. Everything else, the proxying rules of
portside-proxy.conf above all, is exactly what users deploy. nginx runs in the foreground of a
process group this module starts and stops, with its logs under test-output/.
"""

from __future__ import annotations

import os
import re
import signal
import ssl
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.commands import require
from tests.support.server import OUTPUT, ROOT, free_port

SITE = ROOT / "deploy" / "nginx" / "portside.conf"
PROXY_RULES = ROOT / "deploy" / "nginx" / "portside-proxy.conf"


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (and its key), which is also its own CA."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "ca.crt", directory / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"),
            *("-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def render_site(replicas: Sequence[str], http_port: int, https_port: int, cert: Path, key: Path) -> str:
    """deploy/nginx/portside.conf with the replicas, ports and certificate of this machine."""
    site = SITE.read_text(encoding="utf-8")
    example = re.findall(r"^(\s*)server 10\.0\.0\.\d+:5000( [^;]*)?;\n", site, flags=re.M)
    assert example, f"{SITE} lists no example replicas to replace"
    indent, options = example[0]
    servers = "".join(f"{indent}server {address}{options};\n" for address in replicas)
    site = re.sub(r"(^\s*server 10\.0\.0\.\d+:5000[^;]*;\n)+", servers, site, count=1, flags=re.M)
    site = site.replace("listen 80;", f"listen 127.0.0.1:{http_port};")
    site = site.replace("listen 443 ssl", f"listen 127.0.0.1:{https_port} ssl")
    site = re.sub(r"ssl_certificate .*;", f"ssl_certificate {cert};", site)
    site = re.sub(r"ssl_certificate_key .*;", f"ssl_certificate_key {key};", site)
    site = site.replace("include /etc/nginx/portside-proxy.conf;", f"include {PROXY_RULES};")
    return site


@dataclass
class Nginx:
    base: Path
    http_port: int
    https_port: int
    cert: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        """What a client names as the registry: the TLS listener."""
        return f"127.0.0.1:{self.https_port}"

    @property
    def url(self) -> str:
        return f"https://{self.host}"

    def client(self, **kwargs: object) -> httpx.Client:
        trust = ssl.create_default_context(cafile=self.cert)
        return httpx.Client(base_url=self.url, verify=trust, timeout=60, **kwargs)  # type: ignore[arg-type]

    def access_log(self) -> list[str]:
        path = self.base / "access.log"
        return path.read_text(encoding="utf-8").splitlines() if path.exists() else []

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGQUIT)  # graceful: workers finish their requests
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=15)


def _main_config(base: Path, site: str, log_path: Path) -> str:
    temp = {name: base / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    for path in temp.values():
        path.mkdir(parents=True, exist_ok=True)
    # `access_log` names the upstream so that tests can see which replica answered.
    return f"""
daemon off;
worker_processes 1;
pid {base / "nginx.pid"};
error_log {log_path} info;
events {{ worker_connections 1024; }}
http {{
    log_format replica '$request_method $uri $status $upstream_addr';
    access_log {base / "access.log"} replica;
    client_body_temp_path {temp["body"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
{site}
}}
"""


@contextmanager
def running_nginx(base: Path, replicas: Sequence[str], name: str = "nginx") -> Iterator[Nginx]:
    binary = require("nginx")
    base.mkdir(parents=True, exist_ok=True)
    cert, key = self_signed(base / "certs")
    log_path = OUTPUT / "logs" / f"{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.unlink(missing_ok=True)
    nginx = Nginx(base, free_port(), free_port(), cert, log_path)
    config = base / "nginx.conf"
    config.write_text(
        _main_config(base, render_site(replicas, nginx.http_port, nginx.https_port, cert, key), log_path),
        encoding="utf-8",
    )
    checked = subprocess.run([binary, "-t", "-c", str(config)], capture_output=True, text=True)
    assert checked.returncode == 0, f"nginx -t refused the rendered site:\n{checked.stderr}"
    with log_path.open("ab") as log:
        nginx.process = subprocess.Popen(
            [binary, "-c", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        _wait_ready(nginx)
        yield nginx
    finally:
        nginx.stop()


def _wait_ready(nginx: Nginx, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert nginx.process is not None
        if nginx.process.poll() is not None:
            raise AssertionError(f"nginx exited with {nginx.process.returncode}; see {nginx.log_path}")
        try:
            with nginx.client() as http:
                if http.get("/healthz").status_code == 200:
                    return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"nginx did not proxy /healthz within {timeout} s; see {nginx.log_path}")
        time.sleep(0.1)
