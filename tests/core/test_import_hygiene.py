"""core/ never imports textual or rich (checked in a fresh interpreter where both are unimportable).

httpx imports rich for its own CLI when rich is installed (inside a try/except ImportError), so the
check blocks both packages outright: every core module must still import, and none may be loaded.
"""

from __future__ import annotations

import subprocess
import sys

_BLOCK = (
    "import sys, importlib.abc\n"
    "class Block(importlib.abc.MetaPathFinder):\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] in ('textual', 'rich'):\n"
    "            raise ImportError(f'blocked: {name}')\n"
    "        return None\n"
    "sys.meta_path.insert(0, Block())\n"
)


def test_core_does_not_import_ui_libraries() -> None:
    code = _BLOCK + (
        "import pkgutil, importlib, coder_tui.core as c\n"
        "names = [m.name for m in pkgutil.walk_packages(c.__path__, 'coder_tui.core.')]\n"
        "for n in names:\n"
        "    importlib.import_module(n)\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in ('textual', 'rich'))\n"
        "print(len(names), ','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    count, bad = out.stdout.strip().split(" ", 1) if " " in out.stdout.strip() else (out.stdout, "")
    assert int(count) >= 10
    assert bad.strip() == ""


def test_headless_commands_do_not_import_textual() -> None:
    code = (
        "import sys\nfrom coder_tui.__main__ import main\n"
        "try:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
        "print('textual' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("False")
