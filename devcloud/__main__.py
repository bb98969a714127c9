"""``python -m devcloud up|down|status|seed-demo``: the lab's own entry point."""

from devcloud.cli import lab

if __name__ == "__main__":
    lab(prog_name="python -m devcloud")
