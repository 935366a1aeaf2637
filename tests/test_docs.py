"""The docs stay true: the command reference is the commands' own --help, every relative link and
image points at a file (and heading) that exists, every `dreamstyle ...` example uses options its
command has, and every dotted name the docs give for the Python API exists."""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path

import click
import pytest

from dreamstyle.cli import main
from dreamstyle.cli.reference import COMMAND, commands, render

REPO = Path(__file__).resolve().parent.parent
REFERENCE = REPO / "docs" / "commands.md"
# Hand-written pages: README.md, docs/*.md but the generated reference, and the READMEs they link to.
PAGES = sorted(
    {
        REPO / "README.md",
        REPO / "samples" / "README.md",
        REPO / "benchmarks" / "README.md",
        *(REPO / "docs").glob("*.md"),
        *(REPO / "plugins").glob("*/README.md"),
    }
    - {REFERENCE}
)
CHECKED = [*PAGES, REFERENCE]

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]+`")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HTML_SRC = re.compile(r"<(?:img|a)\b[^>]*?\b(?:src|href)=\"([^\"]+)\"", re.I)


def rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def prose(text: str) -> str:
    """The text outside code blocks and inline code, where links are links."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def anchors(path: Path) -> set[str]:
    """The anchors GitHub makes of a page's headings: lowercased, punctuation dropped, spaces to
    dashes, and -1, -2, ... after repeats."""
    seen: dict[str, int] = {}
    slugs = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", FENCE.sub("", path.read_text()), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.replace("`", "").lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        slugs.add(slug if count == 0 else f"{slug}-{count}")
    return slugs


def test_command_reference_is_current():
    assert REFERENCE.exists(), f"docs/commands.md is missing; run: {COMMAND}"
    if REFERENCE.read_text() != render():
        pytest.fail(f"docs/commands.md is stale; run: {COMMAND}", pytrace=False)


def test_the_reference_covers_every_command_and_subcommand():
    text = REFERENCE.read_text()
    for name, cmd in main.commands.items():
        assert f"\n## dreamstyle {name}\n" in text
        for sub in getattr(cmd, "commands", {}):
            assert f"\n## dreamstyle {name} {sub}\n" in text


@pytest.mark.parametrize("page", CHECKED, ids=rel)
def test_relative_links_and_images_point_at_what_exists(page):
    text = prose(page.read_text())
    broken = []
    for target in [*LINK.findall(text), *HTML_SRC.findall(text)]:
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        if not dest.exists():
            broken.append(f"{target} (no file {dest.relative_to(REPO) if dest.is_relative_to(REPO) else dest})")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target} (no heading #{anchor} in {rel(dest)})")
    assert not broken, f"{rel(page)} links to what does not exist: {broken}"


def examples(page: Path) -> list[str]:
    """The `dreamstyle ...` command lines of a page: in code blocks (joining lines continued with a
    backslash) and in inline code."""
    text = page.read_text()
    found = []
    for block in FENCE.finditer(text):
        for line in block.group(0).replace("\\\n", " ").splitlines()[1:-1]:
            line = line.strip().removeprefix("$ ")
            if line.startswith("dreamstyle "):
                found.append(line)
    found += [
        span.strip("`")
        for span in INLINE_CODE.findall(FENCE.sub("", text))
        if span.startswith("`dreamstyle ") and "..." not in span
    ]
    return found


def context(cmd: click.Command, name: str, parent: click.Context | None = None) -> click.Context:
    return cmd.make_context(name, [], parent=parent, resilient_parsing=True)


def resolve(words: list[str]) -> tuple[click.Context, list[str]]:
    """The context of the command a `dreamstyle` line names, and the words after the command's name,
    found as click finds them (so `dreamstyle sweep photo.jpg ...` is sweep's default job, a transfer)."""
    ctx, rest = context(main, "dreamstyle"), list(words)
    while isinstance(ctx.command, click.Group):
        parsed = ctx.command.make_context(ctx.info_name, rest, parent=ctx.parent, resilient_parsing=True)
        first = parsed._protected_args if hasattr(parsed, "_protected_args") else parsed.protected_args  # click < 8.2
        rest = [*first, *parsed.args]
        if not rest:
            break
        sub = ctx.command.get_command(ctx, rest[0])
        if sub is None:
            raise AssertionError(f"no command '{ctx.command_path} {rest[0]}'")
        ctx, rest = context(sub, rest[0], ctx), rest[1:]
    return ctx, rest


def options_of(ctx: click.Context) -> set[str]:
    """The option names ``--help`` lists for the context's command (its help option included)."""
    return {opt for param in ctx.command.get_params(ctx) for opt in [*param.opts, *param.secondary_opts]}


def flags_of(words: list[str]) -> list[str]:
    """The option names in a line's words: `--size`, `-o`, the `--json` of `[--json]`; not values
    such as `-1`, and nothing after a shell's `&&`, `|`, `;`, `>`."""
    flags = []
    for word in words:
        if word in ("&&", "||", "|", ";", ">", ">>"):
            break
        word = word.strip("[]")
        if word.startswith("-") and not re.match(r"-\d", word) and word != "-":
            flags.append(word.split("=", 1)[0])
    return flags


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_every_example_uses_options_its_command_has(page):
    wrong = []
    for line in examples(page):
        try:
            ctx, rest = resolve(shlex.split(line, comments=True)[1:])
        except AssertionError as exc:
            wrong.append(f"{line}: {exc}")
            continue
        unknown = [flag for flag in flags_of(rest) if flag not in options_of(ctx)]
        if unknown:
            wrong.append(f"{ctx.command_path} has no {', '.join(unknown)}: {line}")
    assert not wrong, f"{rel(page)}: " + "\n".join(wrong)


def test_readme_shows_every_command():
    shown = {
        resolve(shlex.split(line, comments=True)[1:])[0].command_path.split()[1]
        for line in examples(REPO / "README.md")
    }
    missing = [name for name, cmd in main.commands.items() if not cmd.hidden and name not in shown]
    assert not missing, f"README.md has no example of: {missing}"


DOTTED = re.compile(r"`(dreamstyle(?:\.[A-Za-z_]\w*)+)(?:\(|`)")


def resolves(name: str) -> bool:
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False
        return True
    return False


PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.M | re.S)


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_python_names_in_the_docs_exist(page):
    """`dreamstyle.x.y` in the text, and every dreamstyle.x.y in a Python block, exists."""
    text = page.read_text()
    names = set(DOTTED.findall(text))
    for block in PYTHON_BLOCK.findall(text):
        names |= set(re.findall(r"(?<![\w.])(dreamstyle(?:\.[A-Za-z_]\w*)+)", block))
    missing = sorted(name for name in names if not resolves(name))
    assert not missing, f"{rel(page)} names what dreamstyle does not have: {missing}"


SOURCE_PATH = re.compile(r"`((?:dreamstyle|tests|benchmarks|samples|plugins)/[\w./-]*\w)`")


def test_source_files_named_in_the_docs_exist():
    missing = [
        f"{rel(page)}: {path}"
        for page in PAGES
        for path in SOURCE_PATH.findall(page.read_text())
        if not (REPO / path).exists()
    ]
    assert not missing, f"the docs name files that do not exist: {missing}"


def every_option() -> set[str]:
    """The option names of every command and subcommand."""
    return {opt for _, ctx in commands() for opt in options_of(ctx)}


@pytest.mark.parametrize("page", [p for p in PAGES if p.parent.name == "docs" or p == REPO / "README.md"], ids=rel)
def test_options_named_in_the_prose_exist(page):
    """`--flag ...` in the text names an option some command has (a renamed option leaves no stale
    name behind)."""
    named = set(re.findall(r"`(--?[a-z][\w-]*)", FENCE.sub("", page.read_text())))
    if page.name == "from-neural-style.md":  # neural-style's own flags (one dash, a word) are its subject
        named = {n for n in named if n.startswith("--") or len(n) == 2}
    unknown = sorted(named - every_option())
    assert not unknown, f"{rel(page)} names options no command has: {unknown}"
