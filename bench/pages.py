"""Time the pages of a package with 1,000 versions (issue 6's 50 ms budget).

    python bench/pages.py PORT DATA_DIR

Pushes admin/big (1,000 image versions, every other one tagged) over HTTP to a Portside on
127.0.0.1:PORT as the site admin (token from DATA_DIR/initial-admin-credentials), signs in to the
pages with the admin's password as a browser does (the session cookie), then requests each page 30
times and prints a Markdown row per page: median, 90th percentile and worst wall time in ms, as the
client sees it.
"""

import base64
import hashlib
import http.client
import json
import re
import statistics
import sys
import time
import urllib.parse
from pathlib import Path

port = int(sys.argv[1])
credentials = dict(
    line.split(": ", 1) for line in (Path(sys.argv[2]) / "initial-admin-credentials").read_text().splitlines()
)
auth = {"Authorization": "Basic " + base64.b64encode(f"admin:{credentials['token']}".encode()).decode()}
c = http.client.HTTPConnection("127.0.0.1", port)


def req(m, p, body=b"", h=None):
    c.request(m, p, body=body, headers={**auth, **(h or {})})
    r = c.getresponse()
    return r.status, r.read()


layer = b"page-layer"
ld = "sha256:" + hashlib.sha256(layer).hexdigest()
assert req("POST", f"/v2/admin/big/blobs/uploads/?digest={ld}", layer)[0] == 201
pushed = (
    req("GET", "/v2/admin/big/manifests/v998", h={"Accept": "application/vnd.oci.image.manifest.v1+json"})[0] == 200
)
for i in range(0 if pushed else 1000):  # a second run times the same package again
    cfg = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {"org.opencontainers.image.description": f"build {i}"}},
            "rootfs": {"type": "layers", "diff_ids": []},
        }
    ).encode()
    cd = "sha256:" + hashlib.sha256(cfg).hexdigest()
    assert req("POST", f"/v2/admin/big/blobs/uploads/?digest={cd}", cfg)[0] == 201
    m = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": len(cfg)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": len(layer)}],
        }
    ).encode()
    ref = f"v{i}" if i % 2 == 0 else "sha256:" + hashlib.sha256(m).hexdigest()
    assert (
        req("PUT", f"/v2/admin/big/manifests/{ref}", m, {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})[
            0
        ]
        == 201
    )
vid = json.loads(req("GET", "/api/v3/user/packages/container/big/versions?per_page=1")[1])[0]["id"]


def sign_in() -> dict[str, str]:
    """The session cookie, through the sign-in form as a browser gets it."""
    c.request("GET", "/login")
    r = c.getresponse()
    page = r.read().decode()
    pre = r.getheader("set-cookie").split(";", 1)[0]
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)
    form = urllib.parse.urlencode({"csrf": csrf, "username": "admin", "password": credentials["password"]})
    c.request("POST", "/login", body=form, headers={"Cookie": pre, "Content-Type": "application/x-www-form-urlencoded"})
    r = c.getresponse()
    r.read()
    assert r.status == 303, r.status
    return {"Cookie": r.getheader("set-cookie").split(";", 1)[0]}


auth = sign_in()
pages = {
    "home": "/",
    "owner": "/users/admin/packages",
    "package": "/users/admin/packages/container/package/big",
    "versions": "/users/admin/packages/container/big/versions",
    "versions p20": "/users/admin/packages/container/big/versions?page=20",
    "untagged": "/users/admin/packages/container/big/versions?filter=untagged",
    "version": f"/users/admin/packages/container/big/{vid}",
    "settings": "/users/admin/packages/container/big/settings",
    "tokens": "/settings/tokens",
    "users": "/admin/users",
}
for name, path in pages.items():
    times = []
    for _ in range(30):
        t = time.perf_counter()
        s, _ = req("GET", path)
        times.append((time.perf_counter() - t) * 1000)
        assert s == 200, (path, s)
    p90 = statistics.quantiles(times, n=10)[-1]
    print(f"| {name} | `{path}` | {statistics.median(times):.1f} | {p90:.1f} | {max(times):.1f} |")
