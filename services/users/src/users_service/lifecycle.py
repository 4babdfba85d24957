"""What the server's lifecycle tells the calls it is running."""

# The name reads as the condition (and the UNAVAILABLE status) it stands for.
# ruff: noqa: N818


class ShuttingDown(Exception):
    """The server is draining: a call held by the lame duck (drain.py), a new watch, or a long
    stream whose grace is nearly spent, ends UNAVAILABLE instead of being cut.

    Without it grpc cancels what still runs when the grace runs out, and the client sees
    CANCELLED, a status it cannot tell from its own cancellation.
    """
