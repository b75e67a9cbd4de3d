"""Checks of a loaded config for exposed keys: literal keys in the file, and who can read it.

Owns ``literal_keys`` (where the file itself holds a key) and ``key_exposure_warning`` (one line
when it does and other users can read the file). What a key-like name is and what a readable file
is are ``core/security.py``'s; printing the warning is the caller's (``commands.py``, the UI).
"""

from __future__ import annotations

from coder_tui.core.config.schema import Config
from coder_tui.core.security import looks_secret, readable_by_others


def literal_keys(config: Config) -> list[str]:
    """Where the config file itself holds a key: ``profiles.NAME.env.VAR`` for each variable with
    a key-like name and a value (``api_key_env`` only names a variable, so it is not one)."""
    found = []
    for name, profile in config.profiles.items():
        for var, value in profile.env.items():
            if looks_secret(var) and value:
                found.append(f"profiles.{name}.env.{var}")
    return found


def key_exposure_warning(config: Config) -> str | None:
    """One warning line when the config file holds a key and other users can read it."""
    if config.path is None:
        return None
    where = literal_keys(config)
    if not where or not readable_by_others(config.path):
        return None
    mode = config.path.stat().st_mode & 0o777
    return (
        f"warning: {config.path} holds an API key ({where[0]}) and other users can read it "
        f"(mode {mode:04o}); run: chmod 600 {config.path}"
    )
