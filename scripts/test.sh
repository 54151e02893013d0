#!/usr/bin/env bash
# Installs everything the tests need (Debian packages for the real clients, the browser tests,
# PostgreSQL, nginx and the container image's test; Python packages, axe-core from npm), then runs the
# linter and the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(skopeo podman buildah docker.io busybox-static uidmap chromium postgresql nginx debootstrap iproute2)
missing=()
for package in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
# npm fetches axe-core below. Checked by command, not package: a machine may have another Node.js
# (NodeSource's nodejs ships npm itself and conflicts with Debian's npm package).
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "error: the tests need these Debian packages: ${missing[*]} (run as root or install them)" >&2
        exit 2
    fi
    mkdir -p test-output
    echo "installing Debian packages: ${missing[*]}"
    apt-get update -qq > test-output/apt.log 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >> test-output/apt.log 2>&1
fi

bash scripts/install.sh test
# axe-core, the accessibility checker the browser tests (tests/browser) inject into every page they
# open; into the git-ignored .cache/, once. Playwright drives Debian's /usr/bin/chromium: it never
# downloads a browser (no `playwright install`).
if [ ! -f .cache/axe/node_modules/axe-core/axe.min.js ]; then
    mkdir -p test-output
    echo "installing axe-core from npm"
    npm install --no-save --no-audit --no-fund --prefix .cache/axe axe-core@4 > test-output/npm.log 2>&1 ||
        { cat test-output/npm.log >&2; exit 2; }
fi
.venv/bin/ruff check src tests
.venv/bin/ruff format --check src tests

# Given test paths, run just those. Otherwise the whole suite on the default (the data directory),
# then the parts that touch blob bytes again on S3 (a real SeaweedFS): the HTTP tests with downloads
# streamed by Portside, and the real clients with downloads redirected to the object store and not.
for arg in "$@"; do
    case "$arg" in -*) ;; *) exec .venv/bin/pytest "$@" ;; esac
done
.venv/bin/pytest "$@"
S3_HTTP=(tests/http/test_blobs.py tests/http/test_uploads.py tests/http/test_durability.py
    tests/http/test_concurrency.py tests/http/test_serving.py tests/http/test_manifests.py
    tests/http/test_referrers.py tests/http/test_tags_catalog.py tests/http/test_smoke.py
    tests/http/test_errors.py tests/http/test_web_version_details.py tests/http/test_gc.py)
echo "== again on S3, downloads streamed by Portside: the HTTP tests that touch blob bytes"
PORTSIDE_TEST_STORAGE=s3-stream .venv/bin/pytest "$@" "${S3_HTTP[@]}"
echo "== again on S3: the real clients, downloads redirected to presigned URLs"
PORTSIDE_TEST_STORAGE=s3 .venv/bin/pytest "$@" tests/e2e
echo "== again on S3: the real clients, downloads streamed by Portside"
PORTSIDE_TEST_STORAGE=s3-stream .venv/bin/pytest "$@" tests/e2e
# PostgreSQL + S3, what a fleet runs on: a representative part (the registry API, tokens, the access
# matrix, the REST API, the pages), each test server on a database of its own in one private cluster.
echo "== again on PostgreSQL and S3: the registry API, tokens, the access matrix, the REST API, the pages"
exec env PORTSIDE_TEST_DATABASE=postgresql PORTSIDE_TEST_STORAGE=s3-stream .venv/bin/pytest "$@" \
    tests/http/test_smoke.py tests/http/test_manifests.py tests/http/test_tags_catalog.py \
    tests/http/test_uploads.py tests/http/test_blobs.py tests/http/test_token_auth.py \
    tests/http/test_access_matrix.py tests/http/test_packages_api.py tests/http/test_manage_api.py \
    tests/http/test_web_pages.py tests/http/test_web_signin.py tests/http/test_gc.py \
    tests/http/test_concurrency.py
