"""``python -m netlab`` is the ``netlab`` command."""

from netlab.cli.main import main

main()
