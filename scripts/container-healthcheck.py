"""The container image's HEALTHCHECK: GET /healthz on the port and scheme the registry serves.

Standard library only, so it runs on the image's Python without the venv; it reads the same
PORTSIDE_* variables as `portside serve`, so a changed port or TLS does not make the check lie.
"""

import os
import ssl
import sys
import urllib.request

port = os.environ.get("PORTSIDE_PORT", "5000")
tls = bool(os.environ.get("PORTSIDE_TLS_CERT"))
# The certificate names the public host, not 127.0.0.1: this check is about liveness, not identity.
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
url = f"{'https' if tls else 'http'}://127.0.0.1:{port}/healthz"
try:
    with urllib.request.urlopen(url, timeout=4, context=context if tls else None) as response:
        sys.exit(0 if response.status == 200 else 1)
except OSError as error:
    print(f"{url}: {error}", file=sys.stderr)
    sys.exit(1)
