"""Fixtures for tests against the real llama-server serving the generated demo model.

With CODER_TUI_REQUIRE_SERVER=1 (set by CI) a missing llama-server fails these tests; otherwise
they are skipped, so a developer without the server extra can still run the unit tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from coder_tui.core.config.loader import Config, load_config
from coder_tui.core.demo.build import DemoResult, prepare_demo
from coder_tui.core.server.ports import free_port


@pytest.fixture(scope="session")
def llama_server(require_tool: Callable[[str], Path]) -> Path:
    return require_tool("llama-server")


@pytest.fixture(scope="session")
def demo(llama_server: Path, tmp_path_factory: pytest.TempPathFactory) -> DemoResult:
    """The small demo model, quantized, with its config (generated once per test session)."""
    return prepare_demo(tmp_path_factory.mktemp("demo"), "small", port=free_port())


@pytest.fixture
def demo_config(demo: DemoResult) -> Config:
    """The demo config on a port that is free right now (tests may run servers back to back)."""
    config = load_config(demo.config_path)
    return replace(config, server=replace(config.server, port=free_port(), stop_grace_s=5))
