"""``python -m devcloud up|down|status``: the same commands as ``stackferry lab``."""

from devcloud.cli import lab

if __name__ == "__main__":
    lab(prog_name="python -m devcloud")
