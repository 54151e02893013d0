"""Fixtures for the container image test: a private docker engine with a bridge of its own.

The e2e engine runs with no bridge; `docker run -p` needs one, so this engine gets a bridge made
for the session (tests/support/dockerd.py) and deleted after dockerd has stopped.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.commands import require
from tests.support.dockerd import Dockerd, private_bridge, running_dockerd


@pytest.fixture(scope="session")
def image_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dockerd]:
    binary = require("dockerd")
    require("docker")
    require("ip")
    with (
        private_bridge() as bridge,
        running_dockerd(
            tmp_path_factory.mktemp("dockerd-image"), binary, name="dockerd-image", bridge=bridge
        ) as daemon,
    ):
        yield daemon
