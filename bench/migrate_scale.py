"""Benchmark: seed a tenant of scale N in the lab's source cloud, migrate it, migrate again.

Prints wall time, API calls by service and method, the summed latency of all calls (to show
how much ran in parallel), and peak RSS of the stackferry process, for both runs. Figures
only: nothing here passes or fails. usage: python -m bench.migrate_scale [--scale N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.measure import migrate
from devcloud.demo import seed_tenant
from devcloud.lab import Lab
from devcloud.layout import DESTINATION, SOURCE
from devcloud.tenants import create_tenant, purge_project_named, purge_tenant


def show(title: str, run: dict[str, object]) -> None:
    report = run["report"]
    assert isinstance(report, dict)
    steps = Counter(s["result"] for s in report["steps"])
    print(f"\n== {title}")
    print(f"wall time            {run['wall']:.1f} s (export + plan + apply + verify)")
    print(f"resources            {sum(steps.values())}  {dict(steps)}")
    print(f"write calls          {report['write_calls']}")
    print(f"summed API latency   {report['api_latency_seconds']:.1f} s (export + plan + apply)")
    print(f"peak RSS             {run['rss_mib']:.0f} MiB")
    print("API calls (export + plan + apply) by cloud, service, method:")
    for row in report["api_calls"]:
        print(f"  {row['cloud']:<12} {row['service']:<14} {row['method']:<7} {row['calls']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=int, default=5)
    parser.add_argument("--parallel", type=int, default=8)
    args = parser.parse_args()
    lab = Lab()
    if not lab.is_healthy():
        lab.up()
    tenant = create_tenant(lab.paths.clouds_yaml, SOURCE)
    try:
        t0 = time.monotonic()
        counts = seed_tenant(tenant.admin, tenant.project_id, args.scale, tenant.user_id)
        print(f"seeded scale {args.scale} in {time.monotonic() - t0:.0f} s: {counts}")
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp) / "workdir"
            for title in ("first migrate", "second migrate (nothing to do)"):
                show(
                    title,
                    migrate(
                        lab.paths.clouds_yaml,
                        tenant.project_name,
                        workdir,
                        "--parallel",
                        str(args.parallel),
                    ),
                )
    finally:
        purge_project_named(lab.paths.clouds_yaml, DESTINATION, tenant.project_name)
        purge_tenant(tenant)


if __name__ == "__main__":
    main()
