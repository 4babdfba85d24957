"""`python -m userstack_cli`, the same as the `userstack` console script."""

from userstack_cli.app import main

main()
