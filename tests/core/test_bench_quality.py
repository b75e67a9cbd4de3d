"""The quality check: extracting code from replies, and the sandbox that runs it with its tests."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from coder_tui.core.bench.quality import TASKS, extract_code, grade
from coder_tui.core.bench.sandbox import network_blocked, run_tests, sandbox_level

PAL = next(t for t in TASKS if t.id == "palindrome")


def test_extract_prefers_the_block_defining_the_function() -> None:
    reply = (
        "Example usage:\n```python\nprint(is_palindrome('x'))\n```\n"
        "The code:\n```python\ndef is_palindrome(s):\n    return True\n```\n"
    )
    assert extract_code(reply, "is_palindrome") == "def is_palindrome(s):\n    return True\n"


def test_extract_other_shapes() -> None:
    assert extract_code("```\ndef f(x):\n    return x\n```", "f") == "def f(x):\n    return x\n"
    assert extract_code("```py\nx = 1\n```", "f") == "x = 1\n"
    assert extract_code("def f():\n    pass", "f") == "def f():\n    pass"
    assert extract_code("I cannot help with that.", "f") is None
    # a reply cut off by max_tokens: the fence never closes
    assert extract_code("```python\ndef f():\n    return 1", "f") == "def f():\n    return 1"


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.id)
def test_every_reference_solution_passes(task: object) -> None:
    from coder_tui.core.bench.quality import QualityTask

    assert isinstance(task, QualityTask)
    passed, reason, _ = grade(task, f"Sure.\n```python\n{task.reference}```\n")
    assert passed, reason


def test_wrong_solution_fails() -> None:
    passed, reason, tail = grade(
        PAL, "```python\ndef is_palindrome(s):\n    return s == s[::-1]\n```"
    )
    assert not passed and reason == "failed" and "AssertionError" in tail


def test_no_code_fails() -> None:
    assert grade(PAL, "A palindrome reads the same both ways.")[:2] == (False, "no code in reply")


def test_infinite_loop_times_out() -> None:
    started = time.monotonic()
    result = run_tests("while True:\n    pass\n", "", timeout_s=1.5)
    assert not result.passed and result.reason == "timeout"
    assert time.monotonic() - started < 6


def test_sleeping_child_processes_are_killed_too() -> None:
    code = "import os, time\nif os.fork() == 0:\n    time.sleep(60)\ntime.sleep(60)\n"
    started = time.monotonic()
    assert run_tests(code, "", timeout_s=1.0).reason == "timeout"
    assert time.monotonic() - started < 6


def test_printing_the_pass_line_is_not_passing() -> None:
    code = "import sys\nprint('ALL TESTS PASSED')\nprint('tests passed 0000')\nsys.exit(0)\n"
    assert not run_tests(code, "assert False\n").passed


def test_output_flood_is_stopped() -> None:
    result = run_tests("while True:\n    print('x' * 1000)\n", "", timeout_s=5)
    assert not result.passed and result.reason in ("output too large", "timeout")


def test_environment_is_scrubbed_and_cwd_is_a_temp_dir() -> None:
    os.environ["CODER_TUI_TEST_SECRET"] = "s3cret"
    try:
        tests = (
            "import os\n"
            "assert 'CODER_TUI_TEST_SECRET' not in os.environ\n"
            "assert 'coder-tui-quality-' in os.getcwd()\n"
        )
        result = run_tests("", tests)
    finally:
        del os.environ["CODER_TUI_TEST_SECRET"]
    assert result.passed, result.output_tail


def test_code_never_runs_in_this_process() -> None:
    marker = "_coder_tui_bench_ran_here"
    run_tests(f"import builtins\nbuiltins.{marker} = True\n", "")
    import builtins

    assert not hasattr(builtins, marker)


def test_network_is_blocked_or_documented() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    accepted: list[bool] = []

    def accept() -> None:
        server.settimeout(5)
        try:
            conn, _ = server.accept()
            accepted.append(True)
            conn.close()
        except OSError:
            pass

    thread = threading.Thread(target=accept)
    thread.start()
    tests = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2).close()\n"
    result = run_tests("", tests, timeout_s=5)
    thread.join()
    server.close()
    if network_blocked():
        assert not result.passed and not accepted, result.output_tail
        assert "no network" in sandbox_level()
    else:
        assert "network NOT blocked" in sandbox_level()
        pytest.skip("unshare -rn is not available here: the sandbox documents the open network")
