"""The cross-cutting code both userstack services share, one copy each.

It knows nothing of either service: each wires it in at its own start (``__main__``, ``server``,
``app``). Modules are named for what they do.
"""
