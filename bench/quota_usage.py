"""What the storage-quota queries cost (registry/quotas.py; docs/lifecycle.md has the results).

Builds a synthetic metadata database at the newest schema: one owner with MANIFESTS versions spread
over PACKAGES packages (each version: its own config and LAYERS layers drawn from a pool of POOL
layers), and OTHERS versions spread over the packages of OTHER_OWNERS other owners, referencing the
same pool, so that the tables are much larger than the owner's part of them. Then times, median of --runs:

  used    the usage query (what every push to an owner with a quota runs)
  added   what one new manifest adds (its blobs the owner does not count yet)
  check   Quotas.check_push as a push runs it (owner, lock, used, added)
  usage   the usage endpoint's figures (used, per package, version counts)

    .venv/bin/python bench/quota_usage.py --manifests 10000
    .venv/bin/python bench/quota_usage.py --manifests 10000 --postgresql   # a private cluster
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, text

from portside.metadata.database import Database, make_engine, upgrade
from portside.metadata.schema import accounts, blobs, manifest_references, manifests, repositories
from portside.registry.quotas import Quotas, added_bytes, used_bytes, used_bytes_query

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def digest(kind: str, i: int) -> str:
    return f"sha256:{kind}{i:0>{64 - len(kind)}}"


def populate(conn: Connection, args: argparse.Namespace) -> tuple[int, int]:
    rng = random.Random(1)
    owners = [{"id": 1, "name": "acme"}] + [{"id": i + 2, "name": f"other{i}"} for i in range(args.other_owners)]
    conn.execute(
        accounts.insert(),
        [{**o, "kind": "org", "is_site_admin": False, "is_disabled": False, "created_at": NOW} for o in owners],
    )
    packages = [
        {"id": o * args.packages + i + 1, "name": f"{owner['name']}/p{i}", "owner_id": owner["id"], "created_at": NOW}
        for o, owner in enumerate(owners)
        for i in range(args.packages)
    ]
    conn.execute(repositories.insert(), packages)
    pool = args.pool
    conn.execute(
        blobs.insert(),
        [{"digest": digest("l", i), "size": rng.randrange(1, 50_000_000), "created_at": NOW} for i in range(pool)],
    )
    rows, refs, configs = [], [], []
    total = args.manifests + args.others
    for m in range(total):
        owner_packages = (0, args.packages) if m < args.manifests else (args.packages, len(packages))
        repository_id = rng.randrange(*owner_packages) + 1
        rows.append(
            {
                "id": m + 1,
                "repository_id": repository_id,
                "digest": digest("m", m),
                "media_type": "application/vnd.oci.image.manifest.v1+json",
                "payload": b"{}",
                "size": 2,
                "created_at": NOW,
                # A tenth of the versions deleted, restorable: they count.
                "deleted_at": NOW if m % 10 == 0 else None,
            }
        )
        configs.append({"digest": digest("c", m), "size": rng.randrange(500, 5000), "created_at": NOW})
        refs.append({"manifest_id": m + 1, "digest": digest("c", m), "kind": "blob"})
        for layer in rng.sample(range(pool), args.layers):
            refs.append({"manifest_id": m + 1, "digest": digest("l", layer), "kind": "blob"})
    for start in range(0, total, 5000):
        conn.execute(blobs.insert(), configs[start : start + 5000])
        conn.execute(manifests.insert(), rows[start : start + 5000])
    for start in range(0, len(refs), 20000):
        conn.execute(manifest_references.insert(), refs[start : start + 20000])
    return total, len(refs)


def timed(fn: Callable[[], Any], runs: int) -> tuple[float, Any]:
    samples, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifests", type=int, default=10_000, help="versions of the measured owner")
    parser.add_argument("--others", type=int, default=50_000, help="versions of other owners")
    parser.add_argument("--other-owners", type=int, default=50, help="owners the other versions belong to")
    parser.add_argument("--packages", type=int, default=100, help="packages per owner")
    parser.add_argument("--layers", type=int, default=5, help="layers per version")
    parser.add_argument("--pool", type=int, default=5_000, help="distinct layers to draw from")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--postgresql", action="store_true", help="a private PostgreSQL cluster, not SQLite")
    args = parser.parse_args()

    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        if args.postgresql:
            from tests.support.postgres import PostgresCluster

            cluster = stack.enter_context(PostgresCluster(tmp / "pg", tmp / "postgres.log"))
            url = cluster.create_database("bench")
        else:
            url = f"sqlite:///{tmp / 'portside.db'}"
        upgrade(url)
        engine = make_engine(url, fsync=False)
        db = Database(engine)
        start = time.perf_counter()
        with engine.begin() as conn:
            total, refs = populate(conn, args)
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
        print(f"{db.dialect}: {total} versions, {refs} references, built in {time.perf_counter() - start:.1f} s")

        quotas = Quotas(db, default_bytes=None, warning_ratio=0.9)
        new = [digest("c", 10**9), *(digest("l", i) for i in range(args.layers))]
        with engine.connect() as conn:
            stmt = used_bytes_query(1)
            compiled = stmt.compile(engine, compile_kwargs={"literal_binds": True})  # type: ignore[attr-defined]
            explain = "EXPLAIN QUERY PLAN " if db.dialect == "sqlite" else "EXPLAIN "
            print("plan of the usage query:")
            for row in conn.exec_driver_sql(explain + str(compiled)):
                print("   ", row[-1])
            ms, used = timed(lambda: used_bytes(conn, 1), args.runs)
            print(f"used   {ms:8.2f} ms  ({used} bytes)")
            ms, added = timed(lambda: added_bytes(conn, 1, new), args.runs)
            print(f"added  {ms:8.2f} ms  ({added} bytes new of {len(new)} blobs)")
            ms, usage = timed(lambda: quotas.usage(conn, 1), max(3, args.runs // 3))
            print(f"usage  {ms:8.2f} ms  ({len(usage.packages)} packages)")
        with_quota = Quotas(db, default_bytes=10**15, warning_ratio=0.9)

        def check() -> str | None:
            with engine.begin() as conn:
                return with_quota.check_push(conn, 1, new)

        ms, _ = timed(check, args.runs)
        print(f"check  {ms:8.2f} ms  (a push's whole quota check, in its own transaction)")
        db.close()


if __name__ == "__main__":
    main()
