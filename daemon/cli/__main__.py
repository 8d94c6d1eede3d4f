"""``python -m zerocontact.daemon.cli``: how an installed service runs the command."""

from . import main

main()
