"""The Connect lines, pasted into a shell, let curl reach the running server (both API styles)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from coder_tui.core.config.loader import Config
from coder_tui.core.server.agent_env import env_lines
from coder_tui.core.server.process import ServerManager


async def test_pasted_lines_let_curl_reach_the_server(demo_config: Config, tmp_path: Path) -> None:
    mgr = ServerManager(demo_config.server, log_dir=tmp_path / "logs")
    profile = demo_config.profile("q4_k_m")
    await mgr.start(profile)
    try:
        lines = env_lines(mgr.url, profile.model.stem)
        script = "\n".join(
            [
                *lines,
                'curl -sf "$OPENAI_BASE_URL/models" -H "Authorization: Bearer $OPENAI_API_KEY"',
                "echo",
                'curl -sf "$ANTHROPIC_BASE_URL/v1/messages" -H "content-type: application/json" '
                '-H "x-api-key: $ANTHROPIC_AUTH_TOKEN" -H "anthropic-version: 2023-06-01" '
                '-d "{\\"model\\": \\"$ANTHROPIC_MODEL\\", \\"max_tokens\\": 8, '
                '\\"messages\\": [{\\"role\\": \\"user\\", \\"content\\": \\"hi\\"}]}"',
            ]
        )
        res = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        models, messages = res.stdout.split("\n", 1)
        assert '"object":"list"' in models.replace(" ", "")
        assert '"type":"message"' in messages.replace(" ", "")
    finally:
        await mgr.stop()
