"""userstack: the users service from the command line (docs/cli.md)."""
