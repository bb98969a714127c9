from click.testing import CliRunner

from stackferry import __version__
from stackferry.cli.main import cli


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"stackferry, version {__version__}"
    assert __version__ == "0.1.0"


def test_help_lists_lab_commands() -> None:
    result = CliRunner().invoke(cli, ["lab", "--help"])
    assert result.exit_code == 0
    for command in ("up", "down", "status"):
        assert f"  {command} " in result.output
