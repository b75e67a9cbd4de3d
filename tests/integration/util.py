"""Small helpers shared by the integration tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def until(cond: Callable[[], object], timeout_s: float = 90.0) -> None:
    """Wait (polling every 50 ms) until ``cond()`` is true; fail the test after ``timeout_s``."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while not cond():
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)
