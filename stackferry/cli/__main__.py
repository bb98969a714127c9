"""``python -m stackferry.cli``: the same as the ``stackferry`` command."""

from stackferry.cli.main import main

main()
