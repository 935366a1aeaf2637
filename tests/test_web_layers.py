"""The web page stands on the public layer: it imports nothing from the command line, and its
sliders' ranges are declared with the options (settings.Spec.bounds)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import dreamstyle
from dreamstyle import web
from dreamstyle.settings import Bounds, TransferSettings

WEB = Path(dreamstyle.__file__).parent / "web.py"


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function, relative ones made absolute."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):  # web.py is in dreamstyle/: ``.x`` is dreamstyle.x
            module = ".".join(p for p in ("dreamstyle" if node.level else "", node.module or "") if p)
            names.add(module)
            names.update(f"{module}.{a.name}" for a in node.names)
    return names


def test_the_web_page_imports_nothing_from_the_cli():
    found = sorted(n for n in imported(WEB) if n == "dreamstyle.cli" or n.startswith("dreamstyle.cli."))
    assert not found, found
    assert "dreamstyle.jobs" in imported(WEB)  # the scan reads relative imports: .jobs is dreamstyle.jobs


def test_importing_the_web_page_loads_no_cli_module():
    code = "import sys, dreamstyle.web; print([m for m in sys.modules if m.split('.')[:2] == ['dreamstyle', 'cli']])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_slider_ranges_are_declared_with_the_options():
    specs = {f.name: f.metadata["spec"] for f in TransferSettings.fields()}
    assert specs["iterations"].bounds == Bounds(1, specs["iterations"].bounds.hi, integer=True)
    assert specs["style_weight"].bounds.lo == 0 and not specs["style_weight"].bounds.integer
    assert specs["backbone"].bounds is None  # not a number: no range
    control = web.form_spec("transfer", "iterations")
    assert control.minimum == 1 and control.maximum == web.SLIDER_REACH["iterations"]
