"""A stand-in coder-tui process for fault tests: starts a server through ServerManager, prints its
pid, then waits to be killed (or exits abruptly when told to), never stopping the server itself.

    python owner_process.py BINARY PORT RUN_DIR MODEL [--keep] [--exit]
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from coder_tui.core.config.loader import Profile, ServerSettings
from coder_tui.core.server.process import ServerManager


async def main() -> None:
    binary, port, run_dir, model = sys.argv[1:5]
    keep = "--keep" in sys.argv
    settings = ServerSettings(binary=Path(binary), port=int(port), ready_timeout_s=20)
    mgr = ServerManager(
        settings, log_dir=Path(run_dir) / "logs", run_dir=Path(run_dir), keep_on_exit=keep
    )
    mode = os.environ.get("OWNER_FAKE_MODE", "normal")
    ready = await mgr.start(Profile(name="p", model=Path(model), env={"FAKE_MODE": mode}))
    print(ready.pid, flush=True)
    if "--exit" in sys.argv:
        if keep:
            mgr.detach()
        os._exit(0)  # no cleanup at all, like a crash
    await asyncio.sleep(3600)


asyncio.run(main())
