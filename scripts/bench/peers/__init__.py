"""The servers the stack is measured against, each a program: `python -m scripts.bench.peers.X`."""
