"""The command line, without a cloud: rendering, error handling, options."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from openstack import exceptions as sdk_exceptions
from rich.console import Console

from stackferry.cli import render
from stackferry.cli.common import explain, handles_errors
from stackferry.cli.main import cli
from stackferry.cli.render import StepProgress
from stackferry.cloud.retry import RetriesExhausted
from stackferry.engine.apply import Outcome, State
from stackferry.engine.model import Resource
from stackferry.engine.plan import Action, Plan, Step
from stackferry.errors import WorkdirError


def test_the_lab_is_its_own_command_not_stackferrys() -> None:
    from devcloud.cli import lab

    result = CliRunner().invoke(lab, ["--help"])
    assert result.exit_code == 0
    for command in ("up", "down", "status", "seed-demo"):
        assert f"  {command} " in result.output
    assert "lab" not in cli.commands


def _rendered(renderable: object) -> str:
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(renderable)
    return out.getvalue()


def test_text_from_clouds_is_never_read_as_markup() -> None:
    """A name or an error from a cloud with brackets in it is shown as it is; the delete
    action (which had no style) renders too."""
    odd = Resource("security_group", {"name": "[/]web[red]"}, {})
    rule = Resource("security_group_rule", {"security_group": "[bold]x"}, {})
    plan = Plan(
        [
            Step(odd, Action.CONFLICT, reason="exists [/] and stackferry did not make it"),
            Step(rule, Action.DELETE, rule, reason="in the destination only"),
        ],
        tenant_exists=True,
    )
    text = _rendered(render.plan_table(plan))
    assert "[/]web[red]" in text and "exists [/] and" in text and "delete" in text
    outcome = Outcome({odd.key: State.FAILED}, {}, {odd.key: "HTTP 409: name [x] taken"})
    assert "name [x] taken" in _rendered(render.outcome_table(plan, outcome))


def test_errors_become_a_message_and_an_exit_code(tmp_path: Path) -> None:
    assert explain(WorkdirError("bad file")) == ("bad file", 2)
    message, code = explain(RetriesExhausted("GET x", 5, 3.0, "HTTP 503"))
    assert code == 1 and "GET x" in message
    forbidden = sdk_exceptions.ForbiddenException(message="no", details="Policy forbids it")
    forbidden.status_code = 403
    message, code = explain(forbidden)
    assert code == 2 and "admin credentials" in message and "Policy forbids it" in message
    message, code = explain(OSError(30, "Read-only file system", str(tmp_path)))
    assert code == 2 and str(tmp_path) in message and "Read-only file system" in message
    message, code = explain(ZeroDivisionError("boom"))
    assert code == 1 and "bug in stackferry" in message and "--debug" in message


def test_an_unexpected_error_has_no_traceback_unless_debugging(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    @handles_errors
    def broken() -> None:
        raise KeyError("surprise")

    monkeypatch.delenv("STACKFERRY_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exited:
        broken()
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert "unexpected KeyError" in err and "Traceback" not in err
    monkeypatch.setenv("STACKFERRY_DEBUG", "1")
    with pytest.raises(KeyError):
        broken()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["apply", "--dst", "c", "--parallel", "0"], "--parallel"),
        (["apply", "--dst", "c", "--parallel", "-1"], "--parallel"),
        (["export", "--src", "c", "--project", "p", "--include", "a["], "regular expression"),
        (["apply", "--dst", "c", "--only", "networks", "--skip", "networks"], "both --only"),
        (["export", "--src", "c", "--project", "p", "--with-data"], "--with-data goes with"),
        (["migrate", "--dst", "c"], "give --src and --project (or --bundle FILE)"),
        (["migrate", "--dst", "c", "--bundle", "b", "--src", "s"], "--bundle replaces"),
        (["apply", "--dst", "c", "--bundle", "b", "--src", "s"], "--bundle replaces --src"),
        (["plan", "--dst", "c", "--only", "quotaz:compute"], "unknown kind"),
    ],
)
def test_options_are_checked_before_any_cloud_is_contacted(
    args: list[str], says: str, tmp_path: Path
) -> None:
    (tmp_path / "stackferry.yaml").write_text("format: 1\ntenant: {name: t, domain: d}\n")
    result = CliRunner().invoke(cli, [*args, "--workdir", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert says in result.output and "Traceback" not in result.output


def test_stackferry_runs_where_the_lab_cannot_be_imported(tmp_path: Path) -> None:
    """The lab is a test tool of the repository: the product neither imports nor ships it."""
    code = (
        "import importlib.util, sys\n"
        "assert importlib.util.find_spec('devcloud') is None, 'devcloud is importable'\n"
        "from stackferry.cli.main import main\n"
        "sys.argv = ['stackferry', '--help']\n"
        "main()\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    assert "migrate" in done.stdout and "lab" not in done.stdout.split("Commands:")[1]


def test_progress_bars_count_the_plans_writes_only() -> None:
    """A kind with 2 writes and 2 unchanged resources shows 2/2 when done, not 4/2."""
    steps = [
        Step(Resource("port", {"name": f"p{i}"}), action)
        for i, action in enumerate(
            [Action.CREATE, Action.UPDATE, Action.UNCHANGED, Action.UNCHANGED]
        )
    ]
    progress = StepProgress(Plan(steps, True), quiet=True)
    for step in steps:
        progress(step, "done" if step.action != Action.UNCHANGED else "unchanged")
    (task,) = progress.progress.tasks
    assert (task.completed, task.total) == (2, 2)
