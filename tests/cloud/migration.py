"""Driving stackferry against the lab as an operator would: through its CLI, in-process."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from devcloud.layout import DESTINATION, SOURCE
from devcloud.tenants import Tenant
from stackferry.cli.main import cli


def run_cli(clouds_yaml: Path, *args: str) -> Result:
    runner = CliRunner()
    return runner.invoke(
        cli,
        list(args),
        env={"OS_CLIENT_CONFIG_FILE": str(clouds_yaml), "COLUMNS": "200"},
        catch_exceptions=False,
    )


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
        return self.cli(
            "apply", "--dst", DESTINATION.name, "--workdir", str(self.workdir), "-q", *extra
        )

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
