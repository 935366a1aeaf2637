"""The ``dreamstyle`` command group: plugin commands loaded on first use, every UserError one line,
and the listing commands (plugins, backbones, layers)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..errors import Interrupted, UserError
from ..version import __version__
from .options import complete_backbones

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def warn_plugin_errors(host) -> None:
    for line in host.errors:
        click.echo(f"dreamstyle: warning: {line}", err=True)


def host():
    from ..plugins import REGISTRIES, get_host

    h = get_host()
    if not getattr(h, "_warned", False):
        for hook in REGISTRIES:  # collect, so errors found while registering are in h.errors too
            h.registry(hook)
        warn_plugin_errors(h)
        h._warned = True
    return h


class DreamstyleGroup(click.Group):
    """Loads commands that plugins add (``register_commands``) on first use."""

    _plugins_loaded = False

    def _load_plugin_commands(self):
        if not self._plugins_loaded:
            self._plugins_loaded = True
            from ..plugins import call_guarded

            h = host()
            before = len(h.errors)
            call_guarded(h, "register_commands", cli=self)
            for line in h.errors[before:]:
                click.echo(f"dreamstyle: warning: {line}", err=True)

    def list_commands(self, ctx):
        self._load_plugin_commands()
        return super().list_commands(ctx)

    def get_command(self, ctx, name):
        cmd = super().get_command(ctx, name)
        if cmd is None:
            self._load_plugin_commands()
            cmd = super().get_command(ctx, name)
        return cmd

    def invoke(self, ctx):
        """A UserError from any command (plugin commands too) is one line; real bugs keep their traceback.
        Ctrl-C that no command caught (while torch or the plugins load: before any work) is exit 130 and
        one line, as every interruption, not click's "Aborted!" and 1."""
        try:
            return super().invoke(ctx)
        except Interrupted as exc:  # Ctrl-C or SIGTERM before anything was made: 130, as any interruption
            click.echo(f"dreamstyle: {exc}", err=True)
            sys.exit(130)
        except KeyboardInterrupt:
            click.echo("dreamstyle: interrupted; nothing was written", err=True)
            sys.exit(130)
        except UserError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=DreamstyleGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="dreamstyle")
def main():
    """Neural style transfer, DeepDream and their hybrid, over swappable CNN backbones."""


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def plugins(as_json):
    """List loaded plugins, the hooks each implements, and its version."""
    h = host()
    rows = [p.to_dict() for p in h.plugins()]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from .tables import show, table

    show(
        table(
            ["plugin", "version", "hooks"],
            [
                (
                    r["name"],
                    (r["version"] or "") + (" (built in)" if r["builtin"] else ""),
                    ", ".join(r["hooks"]) + "".join(f"\nproblem: {p}" for p in r["problems"]),
                )
                for r in rows
            ],
        )
    )


def term_rows() -> list[dict]:
    """Every registered loss term: its plugin, description, default weight, options and the images it reads."""
    import inspect

    reg = host().loss_terms
    rows = []
    for name in reg.names():
        spec = reg.get(name)
        try:
            params = inspect.signature(spec.build).parameters.values()
            options = {
                p.name: (None if p.default is p.empty else p.default)
                for p in params
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "backbone"
            }
        except (TypeError, ValueError):
            options = {}
        try:
            reads = getattr(spec.build(), "reads", None)
        except Exception:  # noqa: BLE001 - a term that needs options to be built: its reads are unknown
            reads = None
        rows.append(
            {
                "name": name,
                "plugin": reg.owner[name],
                "description": spec.description,
                "default_weight": spec.default_weight,
                "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in options.items()},
                "reads": list(reads) if reads is not None else None,
            }
        )
    return rows


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def losses(as_json):
    """List the loss terms (built-in and from plugins): use them with --loss NAME=WEIGHT[:KEY=VALUE]."""
    rows = term_rows()
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    from .tables import lines, show, table

    def about(r):
        options = ", ".join(
            f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}"  # as --loss takes them
            for k, v in r["options"].items()
        )
        reads = "not declared" if r["reads"] is None else (", ".join(r["reads"]) or "no images")
        plugin = "" if r["plugin"].startswith("dreamstyle.") else r["plugin"]
        return lines([("", r["description"]), ("options:", options), ("reads:", reads), ("plugin:", plugin)])

    show(
        table(
            ["term", "weight", "about"],
            [(r["name"], f"{r['default_weight']:g}", about(r)) for r in rows],
            right=["weight"],
            caption="use: --loss NAME=WEIGHT[:KEY=VALUE...]; all fields: --json",
        )
    )


def backbone_rows() -> list[dict]:
    """Every registered backbone (a family, like timm's, as one row) with where its pretrained weights
    are on this machine (looked up without the network)."""
    reg = host().backbones
    rows = []
    for name in reg.names():
        entry = reg.entries[name]
        try:
            if hasattr(entry, "resolve"):
                row = {
                    "name": name,
                    "description": entry.description,
                    "plugin": reg.owner[name],
                    "family": True,
                    "weights_file": None,
                    "weights": "per model",
                }
                if getattr(entry, "prefix", None) == "timm/":  # which timm models have theirs here
                    from ..backbones.hub import checkpoints_dir, timm_weights_here

                    row["here"] = [
                        {"backbone": "timm/" + tag.split(".")[0], "tag": tag, "file": str(path)}
                        for tag, path in timm_weights_here()
                    ]
                    row["place_at"] = str(checkpoints_dir() / "timm--<tag>.safetensors")
                rows.append(row)
                continue
            path, how = entry.pretrained_file()
            row = {**entry.to_dict(), "family": False, "weights_file": str(path) if path else None, "weights": how}
            if not path and getattr(entry, "tv_weights", None):  # torchvision's: the file to place, and where
                from ..backbones.base import torchvision_weights_url
                from ..backbones.hub import checkpoints_dir

                row["url"] = torchvision_weights_url(entry)
                row["place_at"] = str(checkpoints_dir() / row["url"].rsplit("/", 1)[-1])
            rows.append(row)
        except Exception as exc:  # noqa: BLE001 - one plugin's broken backbone costs one line, not the listing
            click.echo(
                f"dreamstyle: warning: backbone {name!r} of plugin {reg.owner[name]!r} cannot describe "
                f"itself ({type(exc).__name__}: {exc}); left out",
                err=True,
            )
    return rows


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@click.option(
    "--layers",
    "of",
    metavar="BACKBONE",
    shell_complete=complete_backbones,
    help="List BACKBONE's layers instead (as dreamstyle layers BACKBONE): a name, or your own network's file.",
)
def backbones(as_json, of):
    """List the backbones (built-in and from plugins) and whether their pretrained weights are on this
    machine; for the others, which file to place where (or --weights random / FILE).

    Your own network is a backbone too: --backbone FILE (TorchScript, torch.export .pt2, ONNX) or
    --backbone MODULE:CALLABLE wherever a backbone is taken."""
    if of is not None:
        show_layers(of, as_json)
        return
    rows = backbone_rows()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from .tables import lines, show, table

    def weights(r):
        return "per model" if r["family"] else ("here" if r["weights_file"] else "not here")

    def about(r):
        plugin = "" if r["plugin"].startswith("dreamstyle.") else r["plugin"]
        return lines([("", r["description"]), ("min px:", str(r.get("min_size", ""))), ("plugin:", plugin)])

    show(table(["backbone", "weights", "about"], [(r["name"], weights(r), about(r)) for r in rows]))
    _missing_weights([r for r in rows if not r["family"] and not r["weights_file"]])
    _family_weights([r for r in rows if "here" in r])


def _missing_weights(missing: list[dict]) -> None:
    """Which file each backbone without its weights here needs, and where: torchvision's grouped by
    the folder they come from and go to (short lines: a pipe is 80 columns), the others as they say."""
    from .tables import entries

    if not missing:
        return
    entries(
        [
            (
                "pretrained weights not on this machine: a run downloads them where the host answers; "
                "offline, place each file yourself (or use --weights FILE or --weights random):",
                [],
            )
        ]
    )
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in missing:
        if r.get("url"):
            groups.setdefault((r["url"].rsplit("/", 1)[0], str(Path(r["place_at"]).parent)), []).append(r)
    width = max([len(r["name"]) for r in missing] + [12]) + 2
    for (source, folder), group in groups.items():
        entries([(f"  from {source}/", []), (f"  into {folder}/", [])], wrap=False)
        entries([(f"    {r['name']:<{width}}{r['url'].rsplit('/', 1)[-1]}", []) for r in group])
    entries([(f"  {r['name']}:", [r["weights"]]) for r in missing if not r.get("url")], indent=4)


def _family_weights(families: list[dict]) -> None:
    """timm's models: those whose weights are here; for the others, the file a run looks for."""
    from .tables import entries

    for r in families:
        here = ", ".join(f"{h['backbone']} ({h['tag']})" for h in r["here"]) or "none"
        entries(
            [
                (
                    f"{r['name']}: pretrained weights here: {here}",
                    [
                        ("the others: a" if r["here"] else "a")
                        + " run downloads them into the Hugging Face cache where the "
                        "host answers; offline, it names the file to place (the model's model.safetensors) as"
                    ],
                )
            ]
        )
        entries([(f"    {r['place_at']}", [])], wrap=False)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def optimizers(as_json):
    """List the optimizers (built-in and from plugins): use them with --optimizer NAME."""
    reg = host().optimizers
    rows = []
    for name in reg.names():
        spec = reg.get(name)
        rows.append(
            {
                "name": name,
                "description": spec.description,
                "default_lr": spec.default_lr,
                "clamp": spec.clamp,
                "plugin": reg.owner[name],
            }
        )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from .tables import lines, show, table

    show(
        table(
            ["optimizer", "lr", "about"],
            [
                (
                    r["name"],
                    f"{r['default_lr']:g}",
                    lines(
                        [
                            ("", r["description"]),
                            ("plugin:", "" if r["plugin"].startswith("dreamstyle.") else r["plugin"]),
                        ]
                    ),
                )
                for r in rows
            ],
            right=["lr"],
            caption="lr: the default learning rate, 0-255 pixel units (--lr)",
        )
    )


@main.command()
@click.argument("backbone", shell_complete=complete_backbones)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@click.option(
    "--input-channels",
    type=click.IntRange(1, 1024),
    help="Your own network (BACKBONE a file or MODULE:CALLABLE): the channels it takes "
    "[default: its first convolution's].",
)
def layers(backbone, as_json, input_channels):
    """List the layers of BACKBONE in network order: name, module, channels, stride.

    BACKBONE may be your own network: a TorchScript, torch.export (.pt2) or ONNX file, or
    MODULE:CALLABLE; its layers are derived from its graph. Listing never loads weights
    (a file's are read with it)."""
    show_layers(backbone, as_json, input_channels)


def show_layers(backbone: str, as_json: bool, input_channels: int | None = None) -> None:
    bb = host().backbones.get(backbone)
    if input_channels is not None:
        if not hasattr(bb, "configured"):
            raise click.UsageError(f"--input-channels goes with your own network, not with {backbone!r}")
        from ..backbones.own import InputSpec

        bb = bb.configured(InputSpec(channels=input_channels))
    rows = [layer.to_dict() for layer in bb.layer_map]
    defaults = {"content": set(bb.content_layers), "style": set(bb.style_layers), "dream": set(bb.dream_layers)}
    for r in rows:
        r["default_for"] = [role for role, names in defaults.items() if r["name"] in names]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from .tables import show, table

    channels = getattr(bb.preprocess, "channels", 3)
    show(
        table(
            ["layer", "module", "channels", "stride", "default for"],
            [(r["name"], r["module"], str(r["channels"]), str(r["stride"]), ", ".join(r["default_for"])) for r in rows],
            title=bb.name + (f" ({channels} input channels)" if channels != 3 else ""),
            right=["channels", "stride"],
        )
    )


@main.command("new-plugin")
@click.argument("name")
@click.option("--backbone", "kind", flag_value="backbone", default=True, help="A backbone plugin (the default).")
@click.option("--loss", "kind", flag_value="loss", help="A loss-term plugin.")
@click.option(
    "-o",
    "--output",
    "parent",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("."),
    show_default=True,
    help="The folder to write dreamstyle-NAME/ into.",
)
def new_plugin(name, kind, parent):
    """Write a ready plugin package to start from: dreamstyle-NAME/ with pyproject.toml (the entry
    point), the module and a contract test (dreamstyle.testing). It installs and passes as written."""
    from ..scaffold import new_plugin as write

    folder = write(name, kind, parent)
    click.echo(f"wrote {folder}: pip install -e {folder} && python -m pytest {folder / 'tests'}", err=True)
