"""The tokens `userstack login` stores: one per target, in a file only its owner can read.

The file is $USERSTACK_CONFIG_DIR/credentials.json, else $XDG_CONFIG_HOME/userstack/..., else
~/.config/userstack/...; the folder is made 0700 and the file written 0600 (a new file, renamed
over the old one, so no moment exists where it is readable by others or half written).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from userstack_cli.errors import CliError, ExitCode

FILE_NAME = "credentials.json"


def config_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where the CLI keeps its credentials."""
    env = os.environ if env is None else env
    if env.get("USERSTACK_CONFIG_DIR"):
        return Path(env["USERSTACK_CONFIG_DIR"])
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "userstack"


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise CliError(f"cannot read {path}: {error}", ExitCode.FAILURE) from error
    return data if isinstance(data, dict) else {}


def stored_token(target: str, env: Mapping[str, str] | None = None) -> str | None:
    """The token stored for `target` by `userstack login`, if any."""
    entry = _read(config_dir(env) / FILE_NAME).get("tokens", {}).get(target)
    return (
        str(entry["access_token"]) if isinstance(entry, dict) and "access_token" in entry else None
    )


def store_token(target: str, entry: dict[str, str], env: Mapping[str, str] | None = None) -> Path:
    """Stores (or with `entry` empty, forgets) the token for `target`; returns the file."""
    folder = config_dir(env)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / FILE_NAME
    data = _read(path)
    tokens = data.setdefault("tokens", {})
    if entry:
        tokens[target] = entry
    else:
        tokens.pop(target, None)
    descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=".credentials-")  # mode 0600
    with os.fdopen(descriptor, "w") as file:
        json.dump(data, file, indent=2)
    Path(temporary).replace(path)
    return path
