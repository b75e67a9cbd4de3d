"""Where coder-tui keeps things: the config file, state, cache, data and logs, resolved in one place.

Order for the config file: ``--config``, then ``$CODER_TUI_CONFIG``, then the XDG config path.
Directories come from platformdirs, so ``XDG_*`` variables are honoured. Nothing here creates
files; callers create directories when they first write.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_NAME = "coder-tui"
CONFIG_ENV = "CODER_TUI_CONFIG"


@dataclass(frozen=True)
class AppPaths:
    """The directories coder-tui reads and writes, as one frozen value."""

    config_dir: Path
    state_dir: Path
    cache_dir: Path
    data_dir: Path

    @property
    def default_config_file(self) -> Path:
        return self.config_dir / "config.toml"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.toml"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def demo_dir(self) -> Path:
        return self.cache_dir / "demo"

    @property
    def history_db(self) -> Path:
        return self.data_dir / "history.sqlite3"


def app_paths() -> AppPaths:
    """The platform's directories for coder-tui (XDG on Linux)."""
    return AppPaths(
        config_dir=Path(platformdirs.user_config_dir(APP_NAME)),
        state_dir=Path(platformdirs.user_state_dir(APP_NAME)),
        cache_dir=Path(platformdirs.user_cache_dir(APP_NAME)),
        data_dir=Path(platformdirs.user_data_dir(APP_NAME)),
    )


def resolve_config_path(cli_value: str | os.PathLike[str] | None) -> Path:
    """The config file to read: ``--config``, else ``$CODER_TUI_CONFIG``, else the XDG path."""
    if cli_value:
        return Path(cli_value).expanduser()
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env).expanduser()
    return app_paths().default_config_file
