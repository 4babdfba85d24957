"""The cross-cutting code both userstack services share, one copy of each; it imports neither."""
