"""The package's import graph: no module imports itself back through others (a cycle makes the
order of imports matter and hides which module owns what), counting imports inside functions."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "dreamstyle"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _targets(module: str, node, modules) -> list[str]:
    """The package modules an import statement in ``module`` loads."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name in modules]
    package = module if modules[module].name == "__init__.py" else module.rpartition(".")[0]
    for _ in range(max(0, node.level - 1)):
        package = package.rpartition(".")[0]
    base = (f"{package}.{node.module}" if node.module else package) if node.level else node.module
    out = []
    for alias in node.names:
        name = f"{base}.{alias.name}"
        out.append(name if name in modules else base)
    return [t for t in out if t in modules]


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {m: set() for m in modules}
    for module, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                graph[module].update(t for t in _targets(module, node, modules) if t != module)
    return graph


def find_cycle(graph) -> list[str] | None:
    """One cycle of the graph (a path that comes back to its start), or None."""
    done, path = set(), []

    def visit(node):
        if node in path:
            return path[path.index(node) :] + [node]
        if node in done:
            return None
        path.append(node)
        for nxt in sorted(graph[node]):
            found = visit(nxt)
            if found:
                return found
        path.pop()
        done.add(node)
        return None

    for start in sorted(graph):
        found = visit(start)
        if found:
            return found
    return None


def test_the_package_has_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_command_line_imports_no_torch():
    """``dreamstyle --help`` and shell completion stay instant: the CLI module loads torch only in
    the command bodies."""
    code = "import sys, dreamstyle.cli; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0, "import dreamstyle.cli loaded torch"


def test_every_commands_help_loads_no_torch():
    """``--help`` of the group and of every command is read without loading torch (the lazy imports
    at the edges are there for this)."""
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from dreamstyle.cli import main as group\n"
        "for name in [None, *sorted(group.commands)]:\n"
        "    args = ['--help'] if name is None else [name, '--help']\n"
        "    result = CliRunner().invoke(group, args)\n"
        "    assert result.exit_code == 0, (args, result.output)\n"
        "    assert 'torch' not in sys.modules, f'{args} loaded torch'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
