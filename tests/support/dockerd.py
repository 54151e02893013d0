"""A private, real docker engine (Debian's dockerd) for end-to-end tests.

It runs with its own data root, exec root, pidfile and unix socket under a temp dir, no iptables
and no bridge (see /work/shared/reference/real-clients.md, section 4b), so it touches nothing
else on the machine. Its output goes to a log file; whoever starts it must stop it.

`docker run -p` needs a bridge: `private_bridge()` makes one of the test's own (docker-proxy then
forwards a loopback port to the container; with no iptables nothing is routed anywhere else).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.server import OUTPUT


@dataclass
class Dockerd:
    base: Path
    log_path: Path
    bridge: str | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.base / "docker.sock"

    @property
    def config_dir(self) -> Path:
        """A private DOCKER_CONFIG, so nothing reads or writes ~/.docker."""
        return self.base / "config"

    @property
    def env(self) -> dict[str, str]:
        return {
            "DOCKER_HOST": f"unix://{self.socket}",
            "DOCKER_CONFIG": str(self.config_dir),
            # No buildx here: ask for the legacy builder explicitly instead of relying on the fallback.
            "DOCKER_BUILDKIT": "0",
        }

    def command(self, binary: str) -> list[str]:
        return [
            binary,
            "--iptables=false",
            "--ip6tables=false",
            # Nor the machine's sysctls: docker-proxy reaches the containers on the bridge, nothing is routed.
            "--ip-forward=false",
            "--ip-masq=false",
            f"--bridge={self.bridge or 'none'}",
            "--storage-driver=overlay2",
            "--data-root",
            str(self.base / "root"),
            "--exec-root",
            str(self.base / "exec"),
            "--pidfile",
            str(self.base / "dockerd.pid"),
            "-H",
            f"unix://{self.socket}",
        ]

    def start(self, binary: str, timeout: float = 60.0) -> None:
        for sub in ("root", "exec", "config"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(binary),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its containerd joins this group; see stop()
            )
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        transport = httpx.HTTPTransport(uds=str(self.socket))
        with httpx.Client(transport=transport, base_url="http://docker", timeout=2) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"dockerd exited with {self.process.returncode}; see {self.log_path}")
                try:
                    if client.get("/_ping").text == "OK":
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
        raise RuntimeError(f"dockerd was not ready within {timeout}s; see {self.log_path}")

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM dockerd and wait: it stops its own containerd. SIGKILL the group if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=timeout)
        _reap_group(self.process.pid, timeout)
        _unmount_under(self.base)


def _unmount_under(base: Path) -> None:
    """dockerd leaves mounts behind when it stops (with a bridge, exec/netns/default, a handle on
    the host's network namespace); lazily unmount them, deepest first, so none outlives the test."""
    prefix = f"{base.resolve()}/"
    with open("/proc/self/mountinfo", encoding="utf-8") as mountinfo:
        points = [line.split()[4] for line in mountinfo]
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)


def _reap_group(pgid: int, timeout: float) -> None:
    """Give the rest of dockerd's process group (containerd, shims) time to exit, then SIGKILL it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


@contextmanager
def private_bridge(prefix: str = "psimg") -> Iterator[str]:
    """A Linux bridge with a /24 of 10.213.0.0/16 that no interface here uses yet; deleted at the end.

    Only dockerd's containers (in network namespaces it makes) get addresses on it."""
    name = f"{prefix}{os.getpid() % 100000}"
    addresses = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, check=True).stdout
    used = [ipaddress.ip_interface(word) for word in addresses.split() if "/" in word and word[0].isdigit()]
    subnet = next(
        net
        for net in ipaddress.ip_network("10.213.0.0/16").subnets(new_prefix=24)
        if not any(address.network.overlaps(net) for address in used)
    )
    gateway = f"{next(subnet.hosts())}/{subnet.prefixlen}"
    subprocess.run(["ip", "link", "add", name, "type", "bridge"], check=True)
    try:
        subprocess.run(["ip", "addr", "add", gateway, "dev", name], check=True)
        subprocess.run(["ip", "link", "set", name, "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "link", "delete", name], check=False)


@contextmanager
def running_dockerd(base: Path, binary: str, name: str = "dockerd", bridge: str | None = None) -> Iterator[Dockerd]:
    daemon = Dockerd(base=base, log_path=OUTPUT / "logs" / f"{name}.log", bridge=bridge)
    daemon.start(binary)
    try:
        yield daemon
    finally:
        daemon.stop()
