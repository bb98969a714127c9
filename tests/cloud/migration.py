"""Driving stackferry against the lab as an operator would: through its CLI, in-process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from devcloud.layout import CLOUDS, DESTINATION, SOURCE
from devcloud.seed import connect
from devcloud.tenants import Tenant
from stackferry.cli.main import cli
from stackferry.cloud import sdk
from stackferry.kinds.volume import TMP_PREFIX


def run_cli(clouds_yaml: Path, *args: str) -> Result:
    runner = CliRunner()
    return runner.invoke(
        cli,
        list(args),
        env={"OS_CLIENT_CONFIG_FILE": str(clouds_yaml), "COLUMNS": "200"},
        catch_exceptions=False,
    )


def leftovers(clouds_yaml: Path) -> list[str]:
    """Every stackferry temporary image, volume or snapshot in either cloud."""
    found = []
    for cloud in CLOUDS:
        admin = connect(clouds_yaml, cloud.name)
        bs = sdk.block_storage(admin)
        images = admin.image.get("/images", params={"visibility": "all"}).json()["images"]
        names = [i["name"] or "" for i in images]
        names += [v.name or "" for v in bs.volumes(all_projects=True)]
        names += [s.name or "" for s in bs.snapshots(all_projects=True)]
        found += [f"{cloud.name}:{n}" for n in names if n.startswith(TMP_PREFIX)]
    return found


def kill_when(argv: list[str], clouds_yaml: Path, condition: Callable[[], bool], what: str) -> None:
    """Run ``argv`` in its own process and SIGKILL it the moment ``condition`` holds."""
    env = dict(os.environ, OS_CLIENT_CONFIG_FILE=str(clouds_yaml))
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 600
    killed = False
    while proc.poll() is None and time.monotonic() < deadline:
        if condition():
            proc.send_signal(signal.SIGKILL)
            killed = True
            break
        time.sleep(0.2)
    proc.wait(timeout=60)
    errors = proc.stderr.read() if proc.stderr else b""
    assert killed, f"{argv[3:5]} ended (rc {proc.returncode}) before {what}: {errors!r}"


def apply_argv(workdir: Path, *extra: str, src: str | None = None) -> list[str]:
    """``stackferry apply`` of ``workdir`` into the lab's destination, quiet."""
    source = ["--src", src] if src else []
    return ["apply", *source, "--dst", DESTINATION.name, "--workdir", str(workdir), "-q", *extra]


@dataclass
class Migration:
    """One tenant's migration from the lab's source cloud to its destination cloud."""

    clouds_yaml: Path
    source: Tenant
    workdir: Path

    def cli(self, *args: str) -> Result:
        return run_cli(self.clouds_yaml, *args)

    def migrate(self, *extra: str) -> Result:
        return self.cli(
            "migrate",
            "--src",
            SOURCE.name,
            "--dst",
            DESTINATION.name,
            "--project",
            self.source.project_name,
            "--domain",
            "Default",
            "--workdir",
            str(self.workdir),
            "-q",
            *extra,
        )

    def export(self, *extra: str) -> Result:
        return self.cli(
            "export",
            "--src",
            SOURCE.name,
            "--project",
            self.source.project_name,
            "--workdir",
            str(self.workdir),
            *extra,
        )

    def plan_json(self, *extra: str) -> dict[str, Any]:
        result = self.cli(
            "plan",
            "--dst",
            DESTINATION.name,
            "--workdir",
            str(self.workdir),
            "--format",
            "json",
            *extra,
        )
        assert result.exit_code == 0, result.output
        return dict(json.loads(result.output))

    def apply(self, *extra: str) -> Result:
        return self.cli(*apply_argv(self.workdir, *extra))

    def verify(self, *extra: str) -> Result:
        return self.cli(
            "verify",
            "--dst",
            DESTINATION.name,
            "--src",
            SOURCE.name,
            "--workdir",
            str(self.workdir),
            *extra,
        )

    def last_report(self, name: str) -> dict[str, Any]:
        reports = sorted((self.workdir / "reports").glob(f"{name}-*.json"))
        assert reports, f"no {name} report in {self.workdir}"
        return dict(json.loads(reports[-1].read_text()))
