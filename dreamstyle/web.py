"""The web page (``dreamstyle serve``; the optional extra ``dreamstyle[web]``, built with Gradio).

Two layers. The functions here are plain Python and import no Gradio: :func:`form_spec` turns a
settings field into a form control (its default, help text and range come from the field's
:class:`~dreamstyle.settings.Spec`), :func:`settings_from_form` turns a filled form into settings
(through :func:`dreamstyle.settings.make`: the same checks as the command line),
:func:`command_for` writes the ``dreamstyle ...`` command of settings (flags from
:func:`~dreamstyle.settings.flag_of`), :func:`restore` reads a dreamstyle picture's recipe back into
a form, and :class:`WebRun` runs a job through the one runner in a thread, reporting each step.
:func:`build_page` lays them out as a Gradio ``Blocks`` (imported only there) and :func:`serve`
starts it: one run at a time on the device, the others queued.
"""

from __future__ import annotations

import math
import os
import queue
import shlex
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .api import stylize
from .applies import refuse
from .backbones.own import FILE_PREFIX, file_of, is_own
from .drive import Memory, Still, drive
from .errors import ImageError, Interrupted, OptionError, RecipeError, UnknownNameError, UserError
from .fastnet import load_model
from .images import load_image, to_pil
from .jobs import job_saying
from .plugins import get_host
from .replay import recipe_settings
from .runtime import resolve_device
from .settings import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_SIZE,
    DREAM_STEP,
    DREAM_WEIGHT,
    Bounds,
    Settings,
    file_hash,
    flag_of,
    make,
    settings_for,
    short_repr,
)
from .stop import Reason, Stop, describe, kept_as
from .writers import read_recipe, save_image

TABS = {"transfer": "Style transfer", "dream": "DeepDream", "hybrid": "Hybrid", "texture": "Texture"}
KIND_OF_TAB = {"transfer": "transfer", "hybrid": "transfer", "dream": "dream", "texture": "texture"}
KINDS = ("transfer", "dream", "texture")  # the commands whose recipes the page restores

# What each tab offers, by settings field: its image inputs, its layer lists and its sliders.
IMAGES = {
    "transfer": ("content", "styles"),
    "hybrid": ("content", "styles"),
    "dream": ("input",),
    "texture": ("styles",),
}
LAYERS = {
    "transfer": ("content_layers", "style_layers"),
    "hybrid": ("content_layers", "style_layers", "dream_layers"),
    "dream": ("layers",),
    "texture": ("style_layers",),
}
SLIDERS = {
    "transfer": ("size", "iterations", "content_weight", "style_weight", "tv_weight", "style_scale"),
    "hybrid": ("size", "iterations", "content_weight", "style_weight", "tv_weight", "dream_weight"),
    "dream": ("size", "iterations", "lr", "octaves", "octave_scale", "jitter"),
    "texture": ("size", "iterations", "style_weight", "tv_weight", "style_scale"),
}
SWITCHES = {"transfer": (), "hybrid": (), "dream": (), "texture": ("seamless",)}
# The defaults of fields whose default is computed (None in the settings: "the job's"), as the page shows them.
SHOWN_DEFAULTS = {"size": DEFAULT_SIZE, "lr": DREAM_STEP, "dream_weight": DREAM_WEIGHT}
# How far a slider reaches (the settings' bounds are far wider; the number box beside a slider takes
# any value up to this). Loss weights reach ten times their default.
SLIDER_REACH = {
    "size": 2048,
    "iterations": 2000,
    "octaves": 12,
    "octave_scale": 3.0,
    "jitter": 128,
    "style_scale": 4.0,
    "lr": 10 * DREAM_STEP,
}
WEIGHT_REACH = 10
MAX_UPLOAD = "200mb"  # per file, Gradio's check: a network file (below) is the largest upload
MAX_IMAGE_BYTES = 25 * 2**20  # an image upload; the pixel limit (--max-pixels' default) applies too
MAX_NETWORK_BYTES = 200 * 2**20  # your own network's file (a ResNet-50 in fp32 is about 100 MB)
NETWORK_SUFFIXES = (".pt", ".pt2", ".ts", ".torchscript", ".onnx")  # formats read without unpickling
SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "inputs"
DEFAULT_SAMPLES = {"content": "chelsea.png", "input": "chelsea.png", "styles": ("starry_night.jpg",)}
PREVIEW_STEPS = 20  # the live picture updates about this many times a stage


# --- form controls from the settings fields --------------------------------------------------------


@dataclass
class Control:
    """One control of the form, described from a settings field."""

    name: str  # the settings field
    label: str
    help: str
    kind: str  # "slider", "switch", "layers", "images"
    default: object = None
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    integer: bool = False
    choices: list = field(default_factory=list)


def _field(cls, name: str):
    for f in cls.fields():
        if f.name == name:
            return f
    raise KeyError(name)


def _label(name: str) -> str:
    return {"lr": "dream step", "tv_weight": "TV weight", "size": "size (px, long side)"}.get(
        name, name.replace("_", " ")
    )


def form_spec(tab: str, name: str, backbone=None) -> Control:
    """The control of field ``name`` on ``tab``: label, help, default and range from its spec."""
    cls = settings_for(KIND_OF_TAB[tab])
    f = _field(cls, name)
    spec = f.metadata["spec"]
    help_text = spec.help
    if name in SLIDERS[tab]:
        default = f.default if f.default is not None else SHOWN_DEFAULTS[name]
        if isinstance(default, tuple):  # a texture's (w, h): the slider sets a square
            default = default[0]
        integer = isinstance(default, int) or spec.type is int
        bounds = spec.bounds or Bounds(1 if integer else 0, math.inf)
        lo, hi = bounds.lo, bounds.hi
        reach = SLIDER_REACH.get(name, WEIGHT_REACH * default if name.endswith("weight") else hi)
        hi = min(hi, reach)
        step = 1 if integer else 10 ** (math.floor(math.log10(default)) - 1) if default > 0 else 0.1
        if bounds.above:  # more than lo: the slider starts a step above
            lo += step
        if name == "size":
            help_text += " The backbone refuses pictures below its minimum."
        return Control(name, _label(name), help_text, "slider", default, lo, hi, step, integer)
    if name in SWITCHES[tab]:
        return Control(name, _label(name), help_text, "switch", bool(f.default))
    if name in LAYERS[tab]:
        choices = list(backbone.layer_map.names) if backbone is not None else []
        return Control(
            name,
            _label(name),
            help_text,
            "layers",
            default_layers(name, backbone),
            choices=(["auto"] if name == "dream_layers" else []) + choices,
        )
    if name in IMAGES[tab]:
        return Control(name, _label(name), spec.help, "images", DEFAULT_SAMPLES.get(name))
    raise KeyError(f"{name} is not on the {tab} tab")


def default_layers(name: str, backbone) -> list[str]:
    """The layers a list starts with: the backbone's own (what the settings' default means)."""
    if name == "dream_layers":
        return ["auto"]
    if backbone is None:
        return []
    return list(
        {
            "content_layers": backbone.content_layers,
            "style_layers": backbone.style_layers,
            "layers": backbone.dream_layers,
        }[name]
    )


def layer_choices(tab: str, backbone, chosen=()) -> list[tuple[list, list]]:
    """(choices, value) of each layer list of ``tab`` for ``backbone``: the layers ``chosen`` (a list
    per list) where the backbone has them all, else its defaults."""
    out = []
    for name, now in zip(LAYERS[tab], [*chosen, *([None] * len(LAYERS[tab]))]):
        choices = form_spec(tab, name, backbone).choices
        now = list(now or [])
        out.append((choices, now if now and all(layer in choices for layer in now) else default_layers(name, backbone)))
    return out


def controls(tab: str, backbone) -> list[Control]:
    return [form_spec(tab, name, backbone) for name in (*IMAGES[tab], *LAYERS[tab], *SLIDERS[tab], *SWITCHES[tab])]


def backbone_names() -> list[str]:
    """The registered backbones a list can offer (families, such as any timm model, need a name typed)."""
    reg = get_host().backbones
    return [name for name in reg.names() if not hasattr(reg.entries[name], "resolve")]


def get_backbone(name: str):
    """A registered backbone; never a file on the server by its name (a network file comes as an
    upload: :func:`network_backbone`)."""
    backbones = get_host().backbones
    if name.startswith(FILE_PREFIX):
        raise UnknownNameError("backbone", name, backbones.names(), hint="the page offers registered backbones")
    return backbones.get(name, claims=False)


def network_backbone(path):
    """Your own network from an uploaded file (TorchScript, a torch.export archive, ONNX), read as
    ``--backbone FILE`` reads it: nothing unpickled, its layer map derived. A file that is too
    large, of another kind, a pickle or damaged is one :class:`~dreamstyle.errors.UserError` naming
    the file by its name, not the server's folder."""
    path = Path(path)
    if path.suffix.lower() not in NETWORK_SUFFIXES:
        raise OptionError(
            f"{path.name}: upload a network as TorchScript (.pt, .ts), a torch.export archive (.pt2) or ONNX (.onnx)"
        )
    try:
        size = path.stat().st_size
    except OSError:
        raise ImageError(f"{path.name}: the upload is gone; upload it again") from None
    if size > MAX_NETWORK_BYTES:
        raise OptionError(
            f"{path.name} is {size / 2**20:.0f} MB; the page takes networks up to {MAX_NETWORK_BYTES // 2**20} MB"
        )
    try:
        return get_host().backbones.get(FILE_PREFIX + str(path))
    except UserError as exc:
        raise type(exc)(
            friendly(exc, [path]).replace("; or give --backbone MODULE:CALLABLE and --weights FILE", "")
        ) from None


def form_backbone(form: dict):
    """The backbone a form names: an uploaded network first, else the list's choice."""
    upload = form.get("network_upload")
    if isinstance(upload, (list, tuple)):
        upload = upload[0] if upload else None
    if upload:
        return network_backbone(str(getattr(upload, "name", upload)))
    name = form.get("backbone") or "vgg19"
    if not isinstance(name, str):
        raise OptionError(f"backbone {short_repr(name)}: not a backbone's name")
    return get_backbone(name)


def samples() -> list[str]:
    """The sample images offered (samples/inputs of a source checkout; none in an installed wheel)."""
    if not SAMPLES.is_dir():
        return []
    return sorted(
        p.name for p in SAMPLES.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg") and "mask" not in p.name
    )


def sample_path(name: str) -> str:
    if not isinstance(name, str) or name not in samples():
        raise ImageError(f"there is no sample image {short_repr(name)}")
    return str(SAMPLES / name)


# --- the form, to settings and back --------------------------------------------------------------


def check_upload(path, max_pixels: int | None = None) -> str:
    """An uploaded file, read as dreamstyle reads inputs: an ImageError (named by its file name, not
    the server's folder) for a file that is not an image or has too many pixels."""
    try:
        size = Path(path).stat().st_size
        if size > MAX_IMAGE_BYTES:
            raise ImageError(
                f"{path} is {size / 2**20:.0f} MB; the page takes images up to {MAX_IMAGE_BYTES // 2**20} MB"
            )
        load_image(path, max_pixels or DEFAULT_MAX_PIXELS)
    except OSError:
        raise ImageError(f"{Path(path).name}: the upload is gone; upload it again") from None
    except ImageError as exc:
        raise ImageError(str(exc).replace(str(path), Path(path).name).replace(" with --max-pixels", "")) from None
    return str(path)


def _images(name: str, form: dict) -> list[str]:
    uploads = form.get(f"{name}_upload") or []
    if isinstance(uploads, (str, os.PathLike)):
        uploads = [uploads]
    uploads = [str(getattr(u, "name", u)) for u in uploads if u]
    if uploads:
        return [check_upload(u) for u in uploads]
    return [sample_path(p) for p in _names(form, f"{name}_sample")]


def _names(form: dict, key: str) -> list:
    """A list control's value (a name, or a list of them; none: []), as a list."""
    value = form.get(key) or []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _name(form: dict, key: str, choices) -> str:
    """A choice the form sent (Gradio leaves it to dreamstyle: one line for a value it does not offer)."""
    value = form.get(key) or choices[0]
    if value not in choices:
        raise OptionError(f"{_label(key)}: choose {' or '.join(choices)}, not {short_repr(value)}")
    return value


def settings_from_form(tab: str, form: dict) -> Settings:
    """Settings from a filled form (control name -> value): the images uploaded or picked, the
    backbone, the layers, the sliders. A mistake is one :class:`~dreamstyle.errors.UserError`."""
    cls = settings_for(KIND_OF_TAB[tab])
    backbone = form_backbone(form)
    weights = _name(form, "weights", ("pretrained", "random"))
    values: dict = {
        "backbone": backbone.name,  # an uploaded network's: file:PATH, its file carries its weights
        "weights": "random" if weights == "random" and not backbone.name.startswith(FILE_PREFIX) else None,
    }
    seed = form.get("seed")
    if isinstance(seed, str):
        seed = int(seed.strip()) if seed.strip().isdigit() else seed.strip() or None
    if seed is not None:
        values["seed"] = int(seed) if isinstance(seed, float) and seed.is_integer() else seed
    for name in IMAGES[tab]:
        images = _images(name, form)
        what = "a style image" if name == "styles" else "a photo"
        if not images:
            raise ImageError(f"{TABS[tab]}: upload or pick {what}")
        values[name] = tuple(images) if name == "styles" else images[0]
    for name in LAYERS[tab]:
        chosen = _names(form, name)
        if not all(isinstance(layer, str) for layer in chosen):
            raise OptionError(f"{_label(name)}: {short_repr(chosen)} is not a list of layer names")
        if name == "dream_layers":
            if not chosen:
                raise OptionError("Hybrid: choose at least one dream layer (auto: one neither content nor style uses)")
            values[name] = tuple(chosen)
        elif name == "layers":
            values[name] = () if chosen == default_layers(name, backbone) else tuple(chosen)
        elif chosen and chosen != default_layers(name, backbone):
            values[name] = {layer: 1.0 for layer in chosen}
    for name in SLIDERS[tab]:
        value = form.get(name)
        if value is None:
            continue
        control = form_spec(tab, name)
        if control.integer and isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, (int, float)) and not control.minimum <= value <= control.maximum:
            raise OptionError(
                f"{control.label} goes from {control.minimum:g} to {control.maximum:g} on the page, not {value:g}"
            )
        if _field(cls, name).default is None and value == control.default:
            continue  # the computed default, as the command line leaves it
        values[name] = f"{value}x{value}" if tab == "texture" and name == "size" else value
    for name in SWITCHES[tab]:
        values[name] = bool(form.get(name))
    settings = make(cls, values)
    refuse(cls.applicability(), values, "still", offered=cls.INPUTS)  # the page makes stills
    return settings


def _number(v) -> str:
    text = f"{v:g}"
    return text if float(text) == v else repr(v)


def _arg(value, names: dict, name: str = "") -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return _number(value)
    if isinstance(value, dict):
        return ",".join(k if w == 1 else f"{k}={_number(w)}" for k, w in value.items())
    if isinstance(value, tuple):
        if name == "size":
            return "x".join(map(str, value))
        return ",".join(_arg(v, names) for v in value)
    text = str(value)
    return names.get(text, text)


def command_for(settings: Settings, output: str = "out.png", names: dict | None = None) -> str:
    """The ``dreamstyle`` command that makes ``settings`` (every option that differs from its default,
    by its flag): pasted, it reproduces the run. ``names`` maps input paths to what to write instead
    (an upload's file name)."""
    names = names or {}
    cls = type(settings)
    words = ["dreamstyle", settings.KIND]
    options = []
    for f in cls.fields():
        spec = f.metadata["spec"]
        value = getattr(settings, f.name)
        if spec.argument:
            words += [_arg(v, names) for v in (value if isinstance(value, tuple) else (value,)) if v is not None]
            continue
        if not spec.cli or value == f.default:
            continue
        options += option_words(f, value, names)
    return shlex.join([*words, "-o", output, *options])


def option_words(f, value, names: dict | None = None) -> list[str]:
    """The words of one option (settings field ``f``) set to ``value`` on the command line."""
    names, flag = names or {}, flag_of(f)
    spec = f.metadata["spec"]
    if spec.type == "flag":
        return [flag] if value else []
    if f.name == "losses":
        return [
            word
            for term, (w, opts) in value.items()
            for word in (
                flag,
                term + ("" if w is None else f"={_number(w)}") + "".join(f":{k}={v}" for k, v in opts.items()),
            )
        ]
    if spec.multiple:
        return [word for v in value for word in (flag, _arg(v, names))]
    return [flag, _arg(value, names, f.name)]


def display_names(settings: Settings) -> dict:
    """Input path -> how the command names it: its file name, a sample's as an upload's (the command
    is run where the user keeps the pictures; the server's folders are never shown)."""
    out = {}
    for name in ("content", "styles", "input"):
        value = getattr(settings, name, None)
        for v in value if isinstance(value, tuple) else (value,):
            if isinstance(v, str):
                out[v] = Path(v).name
    if settings.backbone.startswith(FILE_PREFIX):  # an uploaded network: its file name, where the user keeps it
        out[settings.backbone] = Path(settings.backbone[len(FILE_PREFIX) :]).name
    return out


@dataclass
class Restored:
    """A recipe read back: the tab, the form's values, and what must be given again."""

    tab: str
    form: dict
    missing: list[str]
    unshown: list[str] = field(default_factory=list)  # the recipe's options the form cannot hold, as flags

    def note(self, name: str) -> str:
        """The restore note: which settings came back, what to upload again, what the page left out."""
        text = f"restored the {TABS[self.tab]} settings of {name}"
        if self.missing:
            text += "; upload again: " + ", ".join(self.missing)
        if self.unshown:
            text += (
                "; the page has no control for "
                + ", ".join(f"`{u}`" for u in self.unshown)
                + f": a Run here leaves them out (`dreamstyle {KIND_OF_TAB[self.tab]} --from {name}` "
                "replays them all)"
            )
        return text


def restore(path) -> Restored:
    """The form that made a dreamstyle picture, from the recipe it carries. Inputs are found among
    the samples by name and SHA-256; others are named in ``missing`` (upload them again)."""
    name = Path(path).name
    try:
        recipe = read_recipe(path)
        command = recipe.get("command") if recipe else None
        values, hashes = recipe_settings(recipe, settings_for(command)) if command in KINDS else ({}, {})
    except RecipeError as exc:
        raise ImageError(f"{name} carries a damaged recipe ({exc})") from None
    except Exception:  # noqa: BLE001 - not a picture we can read
        raise ImageError(f"{name} is not a picture dreamstyle can read a recipe from") from None
    if not recipe:
        raise ImageError(f"{name} carries no dreamstyle recipe")
    if command not in KINDS:
        raise ImageError(f"{name} was made by 'dreamstyle {command}', which the page does not run")
    tab = "hybrid" if command == "transfer" and values.get("dream_layers") else command
    backbone, missing = _restored_backbone(name, values.get("backbone") or "vgg19")
    form: dict = {
        "weights": "random" if values.get("weights") == "random" else "pretrained",
        "seed": "" if values.get("seed") is None else str(values["seed"]),
    }
    if backbone is not None:
        form["backbone"] = backbone.name
    for field_name in IMAGES[tab]:
        found = _restored_samples(values.get(field_name), hashes, missing)
        form[f"{field_name}_sample"] = found if field_name == "styles" else (found[0] if found else None)
    for field_name in LAYERS[tab]:
        given = values.get(field_name)
        form[field_name] = list(given) if given else default_layers(field_name, backbone)
    for field_name in SLIDERS[tab]:
        control = form_spec(tab, field_name)
        value = values.get(field_name)
        if isinstance(value, tuple):
            value = value[0]
        form[field_name] = control.default if value is None else value
    for field_name in SWITCHES[tab]:
        form[field_name] = bool(values.get(field_name))
    return Restored(tab, form, missing, unshown(tab, values, backbone))


def _restored_backbone(name: str, backbone_name: str) -> tuple[object, list[str]]:
    """(the backbone, what to upload again) of a recipe's backbone: your own network's file is
    uploaded again (None: its layers are kept as they were); code in a module or a backbone not
    installed here is one line."""
    if not is_own(backbone_name):
        try:
            return get_backbone(backbone_name), []
        except UserError:
            raise ImageError(f"{name} was made with backbone {backbone_name!r}, which is not installed here") from None
    if not file_of(backbone_name):
        raise ImageError(f"{name} was made with {backbone_name}, code in a Python module, which the page does not run")
    return None, [f"{Path(file_of(backbone_name)).name} (the network)"]


def _restored_samples(given, hashes: dict, missing: list) -> list[str]:
    """The samples among a recipe's inputs ``given`` (by name and SHA-256); the others go to ``missing``."""
    found = []
    for v in given if isinstance(given, tuple) else (given,):
        if not isinstance(v, str):
            continue
        base = Path(v).name
        if base in samples() and (not hashes.get(base) or file_hash(SAMPLES / base) == hashes[base]):
            found.append(base)
        else:
            missing.append(base)
    return found


def unshown(tab: str, values: dict, backbone) -> list[str]:
    """The options of a recipe's ``values`` that the form of ``tab`` cannot hold (no control for them,
    a layer weight, a size past its slider, a weights file), each as its command-line words."""
    cls = settings_for(KIND_OF_TAB[tab])
    out = []
    for f in cls.fields():
        value = values.get(f.name)
        if (
            f.name not in values
            or f.name in IMAGES[tab]
            or f.name in ("backbone", "seed")
            or not f.metadata["spec"].cli
            or value == f.default
            or _empty(value)
            and _empty(f.default)
        ):
            continue
        if _shown(tab, f.name, value, backbone):
            continue
        out.append(shlex.join(option_words(f, value, {v: Path(v).name for v in _strings(value)})))
    return out


def _shown(tab: str, name: str, value, backbone) -> bool:
    """Whether the form of ``tab`` holds ``value`` of field ``name`` as it is."""
    if name == "weights":  # the radio: pretrained (the backbone's own, "default" in a recipe) or random
        return value in (None, "default", "pretrained", "random")
    if name in SWITCHES[tab]:
        return True
    if name in LAYERS[tab]:  # (your own network's layers: its upload offers them)
        choices = form_spec(tab, name, backbone).choices
        weights = value.values() if isinstance(value, dict) else [1]
        return (backbone is None or all(layer in choices for layer in value)) and all(w == 1 for w in weights)
    if name in SLIDERS[tab]:
        if isinstance(value, tuple):
            if len(set(value)) > 1:  # a W x H: the slider sets a long side (a texture's square)
                return False
            value = value[0]
        control = form_spec(tab, name)
        return isinstance(value, (int, float)) and control.minimum <= value <= control.maximum
    return False


def _empty(value) -> bool:  # an empty list of loss terms, layers or styles, however it is written
    return isinstance(value, (dict, tuple, list)) and not value


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, (tuple, list)) else []


# --- running ---------------------------------------------------------------------------------------


@dataclass
class Progress:
    """A step of a run, for the page: the line to show, and a picture on some steps."""

    line: str
    image: object = None  # a PIL image


@dataclass
class Outcome:
    """How a run ended: the picture, where its PNG is, the command that remakes it and one line."""

    image: object
    path: Path
    command: str
    line: str
    stopped: bool = False


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def progress_line(event, done: int, total: int, elapsed: float) -> str:
    """ "iteration 12/50 · scale 1/2 · total 3.1e+03 · content 12.5 · style 300 · ETA 0:07"."""
    parts = [f"iteration {event.iteration}/{event.iterations}"]
    if event.stages > 1:
        parts.append(f"{'scale' if 'octave' not in event.label else 'octave'} {event.stage}/{event.stages}")
    if event.total is not None:
        parts.append(f"total {event.total:.4g}")
    for name, value in (event.losses or {}).items():
        parts.append(f"{name} {value:.4g}")
    if done:
        parts.append(f"ETA {_clock(elapsed / done * max(0, total - done))}")
    return " · ".join(parts)


class WebRun:
    """One job through the one runner, in a thread: iterate it for :class:`Progress`, then
    :attr:`outcome`. ``stop`` (a threading.Event) stops it at the next step and keeps the best
    picture so far, as Ctrl-C does on the command line."""

    def __init__(
        self, tab: str, settings: Settings, folder: Path, stop: threading.Event | None = None, device: str | None = None
    ):
        if device is not None:
            settings = settings.replace(device=device)
        self.tab, self.settings, self.folder = tab, settings, Path(folder)
        self.stop = stop or threading.Event()
        self.notes: list[str] = []
        # what the job chose ("auto" dream layers), its hints and what it loads: shown with the result
        self.job = job_saying(KIND_OF_TAB[tab], settings, self.notes.append, recipe_paths="names")
        self.source = Still()
        self.item = self.source.item(self.job)
        self.stages = self.job.stages(self.item)
        self.total = sum(s.iterations for s in self.stages)
        self.every = max(1, max(s.iterations for s in self.stages) // PREVIEW_STEPS)
        self.outcome: Outcome | None = None
        self.last = None  # the last step's event: where a stopped run got to
        self._events: queue.Queue = queue.Queue()

    def _callback(self, event) -> None:
        if self.stop.is_set():
            raise KeyboardInterrupt
        self._events.put(event)

    def _work(self) -> None:
        try:
            self._events.put(
                drive(self.job, self.source, Memory(snapshot_every=self.every), on_step=self._callback).result
            )
        except BaseException as exc:  # noqa: BLE001 - handed to the page's thread, which raises it
            self._events.put(exc)

    def __iter__(self):
        thread = threading.Thread(target=self._work, name="dreamstyle-web-run", daemon=True)
        start, done = time.monotonic(), 0
        thread.start()
        try:
            while True:
                got = self._events.get()
                if isinstance(got, BaseException):
                    raise got
                if not hasattr(got, "iteration"):  # the Result
                    self.outcome = self._finish(got)
                    return
                done += 1
                self.last = got
                picture = to_pil(got.snapshot[:1]) if got.snapshot is not None else None
                yield Progress(progress_line(got, done, self.total, time.monotonic() - start), picture)
        finally:
            self.stop.set()  # the page went away: the worker stops at its next step
            thread.join()

    def _finish(self, result) -> Outcome:
        kind = KIND_OF_TAB[self.tab]
        stopped, settings, at, note = result.stopped, self.settings.replace(seed=self.job.seed), "", ""
        last = self.last
        if stopped is not None and last is not None:  # the steps that made it: in its name and its command
            if last.stages == 1:
                at, settings = f"-stopped-at-{last.iteration}", settings.replace(iterations=last.iteration)
            else:  # no option stops a later stage part-way: the command runs every step, and says so
                stage = "octave" if "octave" in last.label else "scale"
                at = f"-stopped-at-{stage}-{last.stage}-step-{last.iteration}"
                note = (
                    f"  # stopped at {stage} {last.stage}/{last.stages}, iteration {last.iteration}/"
                    f"{last.iterations}: this command runs every step"
                )
        name = f"dreamstyle-{self.tab}-{self.job.seed}{at}.png"
        folder = Path(tempfile.mkdtemp(prefix="run-", dir=self.folder))
        path = result.save(folder / name)
        command = command_for(settings, name, display_names(self.settings)) + note
        where = (
            f"done: {name}"
            if stopped is None
            else f"{kept_as(stopped, 'dream' if kind == 'dream' else 'picture')} is kept: {name}"
        )
        line = describe(
            Stop(
                Reason.of(stopped),
                where,
                result.fault,
                advice=" (lower the weights)",
                path=Path(path),
                interrupted_as="stopped",
            )
        ).line
        if self.notes:
            line += " (" + "; ".join(self.notes) + ")"
        return Outcome(result.image, Path(path), command, line, stopped is not None)


def friendly(exc: BaseException, paths=()) -> str:
    """One line for the page: a UserError's message, server folders replaced by file names."""
    text = str(exc)
    for p in paths:
        text = text.replace(str(p), Path(p).name)
    if isinstance(exc, Interrupted):
        return "stopped before the first step; nothing was made"
    return text.replace("--max-pixels", "the pixel limit")


def stylize_upload(
    model_path, photo_path, folder: Path, strength: float = 1.0, preserve_color: bool = False, device: str | None = None
) -> Outcome:
    """The Instant tab: an uploaded photo through an uploaded style network (a ``.dsm`` file that
    ``dreamstyle train`` wrote; read without executing anything), written as a PNG with its recipe
    in ``folder``; the outcome's line says the milliseconds. Bad files are a UserError naming the
    file, not the server's folder."""
    if not model_path or not photo_path:
        raise OptionError("give a style network (.dsm) and a photo")
    paths = [model_path, photo_path]
    try:
        model = load_model(model_path, resolve_device(device or "auto"))
        check_upload(photo_path)
        start = time.perf_counter()
        picture = stylize(model, photo_path, strength=float(strength), preserve_color=bool(preserve_color))
        ms = (time.perf_counter() - start) * 1000
    except UserError as exc:
        raise type(exc)(friendly(exc, paths)) from None
    recipe = {
        "command": "stylize",
        "model": Path(model_path).name,
        "model_recipe": model.recipe,
        "content": Path(photo_path).name,
        "strength": float(strength),
        "preserve_color": "luminance" if preserve_color else None,
    }
    out = save_image(picture, Path(folder) / f"dreamstyle-stylize-{int(time.time() * 1000)}.png", recipe, False)
    flags = f" --strength {float(strength):g}" if strength < 1 else ""
    flags += " --preserve-color luminance" if preserve_color else ""
    command = f"dreamstyle stylize {Path(model_path).name} {Path(photo_path).name} -o {out.name}{flags}"
    return Outcome(picture, out, command, f"made in {ms:.0f} ms")


# --- the page (Gradio) --------------------------------------------------------------------------


def require_gradio():
    """Gradio, imported now (with its telemetry off), or one UserError naming the extra."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        import gradio
    except ImportError:
        raise UserError("the web page needs Gradio: pip install 'dreamstyle[web]'") from None
    return gradio


CSS = """
.dreamstyle-status { font-family: ui-monospace, monospace; min-height: 2.5em; }
.dreamstyle-message { color: #b42318; }
"""


def build_page(folder: Path, device: str | None = None):
    """The page as a Gradio ``Blocks``: a tab per job, a recipe drop, one run at a time."""
    gr = require_gradio()
    backbone = get_backbone("vgg19")
    names = backbone_names()
    stops: dict[str, threading.Event] = {}
    tabs_controls: dict[str, dict] = {}

    with gr.Blocks(title="dreamstyle", analytics_enabled=False) as page:
        gr.Markdown(
            "# dreamstyle\nStyle transfer, DeepDream, their hybrid and textures, over pretrained CNNs. "
            "Pick or drop images, choose the options, and Run; one run at a time, the others wait "
            "their turn."
        )
        with gr.Accordion("Restore the settings of a dreamstyle picture", open=False):
            recipe_file = refused_quietly(
                gr,
                gr.File(
                    label="drop a PNG that dreamstyle made (its recipe is inside)",
                    file_types=["image"],
                    type="filepath",
                    elem_id="recipe-drop",
                ),
            )
            recipe_note = gr.Markdown(elem_id="recipe-note")
        with gr.Tabs() as tabs:
            for tab, title in TABS.items():
                with gr.Tab(title, id=tab, elem_id=f"tab-{tab}"):
                    tabs_controls[tab] = _tab(gr, tab, backbone, names, folder, stops, device)
            with gr.Tab("Instant style", id="instant", elem_id="tab-instant"):
                _instant_tab(gr, folder, device)
        recipe_outputs = [recipe_file, tabs, recipe_note]
        for tab in TABS:
            recipe_outputs += list(tabs_controls[tab]["restorable"].values())

        def on_recipe(path):  # the drop zone is emptied each time, ready for the next picture
            keep = [gr.update() for _ in recipe_outputs[3:]]
            if not path:
                return [None, gr.update(), gr.update(), *keep]
            try:
                restored = restore(path)
            except UserError as exc:
                return [None, gr.update(), f"**{friendly(exc, [path])}**", *keep]
            updates = []
            for tab in TABS:
                for name in tabs_controls[tab]["restorable"]:
                    if tab == restored.tab and name in LAYERS[tab] and "backbone" not in restored.form:
                        value = restored.form[name]  # your own network's layers, offered until it is uploaded
                        updates.append(gr.update(choices=list(dict.fromkeys(["auto", *value])), value=value))
                    elif tab == restored.tab and name in restored.form:
                        updates.append(gr.update(value=restored.form[name]))
                    else:
                        updates.append(gr.update())
            return [None, gr.Tabs(selected=restored.tab), restored.note(Path(path).name), *updates]

        recipe_file.upload(on_recipe, recipe_file, recipe_outputs, concurrency_limit=None, api_visibility="private")
    return page


def _instant_tab(gr, folder: Path, device) -> None:
    """A style network trained with ``dreamstyle train`` (its ``.dsm`` file) applied to a photo."""
    with gr.Row():
        with gr.Column(scale=1):
            model = refused_quietly(
                gr,
                gr.File(
                    label="style network (.dsm, from dreamstyle train)",
                    file_types=[".dsm"],
                    type="filepath",
                    elem_id="instant-model",
                ),
            )
            photo = refused_quietly(gr, gr.Image(label="photo", type="filepath", elem_id="instant-photo"))
        with gr.Column(scale=1):
            strength = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="strength (less: blended with the photo)")
            keep = gr.Checkbox(value=False, label="keep the photo's colours")
            button = gr.Button("Stylize", variant="primary", elem_id="instant-run")
        with gr.Column(scale=1):
            picture = gr.Image(label="picture", type="pil", interactive=False, elem_id="instant-picture")
            message = gr.Markdown(elem_id="instant-message")
            command = gr.Textbox(label="the same from the command line", interactive=False)

    def on_stylize(model_path, photo_path, strength_value, keep_colours):
        try:
            out = stylize_upload(model_path, photo_path, folder, strength_value, keep_colours, device)
        except UserError as exc:
            return None, f"**{exc}**", ""
        return out.image, out.line, out.command

    button.click(on_stylize, [model, photo, strength, keep], [picture, message, command], api_name="stylize")


def _tab(gr, tab: str, backbone, names, folder: Path, stops: dict, device):
    """One tab's controls, from the settings fields, and its Run and Reason."""
    inputs: dict = {}
    restorable: dict = {}
    with gr.Row():
        with gr.Column(scale=1):
            message = _picture_inputs(gr, tab, inputs, restorable)
            _network_inputs(gr, tab, backbone, names, inputs, restorable)
        with gr.Column(scale=1):
            _option_inputs(gr, tab, inputs, restorable)
            with gr.Row():
                run_button = gr.Button("Run", variant="primary", elem_id=f"{tab}-run")
                stop_button = gr.Button("Stop", variant="stop", elem_id=f"{tab}-stop")
        with gr.Column(scale=1):
            outputs = _result_outputs(gr, tab)
    for key, component in inputs.items():  # uploads stay Gradio's to check (their type, their path)
        (refused_quietly(gr, component) if key.endswith("_upload") else checked_by_dreamstyle(component))
    _follow_backbone(gr, tab, inputs, message)
    _wire_run(gr, tab, inputs, message, outputs, run_button, stop_button, folder, stops, device)
    return {"inputs": inputs, "restorable": restorable}


def refused_quietly(gr, component):
    """An upload Gradio refuses (not an image's type, a path outside its cache) is its message on the
    page alone, without a traceback in the server's log."""
    check = component.preprocess

    def preprocess(payload):
        try:
            return check(payload)
        except Exception as exc:  # noqa: BLE001 - every refusal of an upload the same way
            message = getattr(exc, "message", None) or str(exc).strip().splitlines()[0]
            raise gr.Error(message, print_exception=False) from None

    component.preprocess = preprocess
    return component


def checked_by_dreamstyle(component):
    """Gradio refuses a value a control does not offer (a sample name out of the list, a number past
    a slider) before dreamstyle sees it, with a traceback in the server's log and a bare "Error" on
    the page. The value goes through as sent instead: :func:`settings_from_form` checks every one
    and answers in one line on the page."""
    component.preprocess = lambda payload: payload
    return component


def _picture_inputs(gr, tab: str, inputs: dict, restorable: dict):
    """An upload and a sample list per image role; the message line that uploads report to."""
    for name in IMAGES[tab]:
        c = form_spec(tab, name)
        many = name == "styles"
        inputs[f"{name}_upload"] = gr.File(
            label=f"{c.label}: drop {'images' if many else 'a photo'}",
            file_count="multiple" if many else "single",
            file_types=["image"],
            type="filepath",
            height=110,
            elem_id=f"{tab}-{name}-upload",
        )
        inputs[f"{name}_sample"] = restorable[f"{name}_sample"] = gr.Dropdown(
            samples(),
            value=list(c.default) if many else c.default,
            multiselect=many,
            label=f"or {'samples' if many else 'a sample'} (an upload comes first)",
            info=c.help,
            elem_id=f"{tab}-{name}-sample",
        )
    message = gr.Markdown(elem_classes=["dreamstyle-message"], elem_id=f"{tab}-message")
    for name in [n for n in inputs if n.endswith("_upload")]:
        inputs[name].upload(
            lambda files: _upload_note(files), inputs[name], message, concurrency_limit=None, api_visibility="private"
        )
    return message


def _network_inputs(gr, tab: str, backbone, names, inputs: dict, restorable: dict) -> None:
    with gr.Row():
        inputs["backbone"] = restorable["backbone"] = gr.Dropdown(
            names, value=backbone.name, label="backbone", info=_help(tab, "backbone"), elem_id=f"{tab}-backbone"
        )
        inputs["weights"] = restorable["weights"] = gr.Radio(
            ["pretrained", "random"],
            value="pretrained",
            label="weights",
            info="random: an untrained network (quick tests); your own network brings its own",
            elem_id=f"{tab}-weights",
        )
    inputs["network_upload"] = gr.File(
        label="or drop your own network (.pt .ts .pt2 .onnx)",
        file_types=list(NETWORK_SUFFIXES),
        type="filepath",
        height=110,
        elem_id=f"{tab}-network-upload",
    )
    for name in LAYERS[tab]:
        c = form_spec(tab, name, backbone)
        inputs[name] = restorable[name] = gr.Dropdown(
            c.choices, value=c.default, multiselect=True, label=c.label, info=c.help, elem_id=f"{tab}-{name}"
        )


def _option_inputs(gr, tab: str, inputs: dict, restorable: dict) -> None:
    for name in SLIDERS[tab]:
        c = form_spec(tab, name)
        inputs[name] = restorable[name] = gr.Slider(
            c.minimum, c.maximum, value=c.default, step=c.step, label=c.label, info=c.help, elem_id=f"{tab}-{name}"
        )
    for name in SWITCHES[tab]:
        c = form_spec(tab, name)
        inputs[name] = restorable[name] = gr.Checkbox(
            value=c.default, label=c.label, info=c.help, elem_id=f"{tab}-{name}"
        )
    inputs["seed"] = restorable["seed"] = gr.Textbox(
        "", label="seed", info=_help(tab, "seed"), placeholder="empty: a new one each run", elem_id=f"{tab}-seed"
    )


def _result_outputs(gr, tab: str) -> dict:
    return {
        "picture": gr.Image(
            label="picture", type="pil", interactive=False, format="png", height=360, elem_id=f"{tab}-picture"
        ),
        "status": gr.Markdown(elem_classes=["dreamstyle-status"], elem_id=f"{tab}-status"),
        "download": gr.File(label="download (a PNG with its recipe)", interactive=False, elem_id=f"{tab}-download"),
        "command": gr.Textbox(
            label="copy command: the same picture from a terminal",
            interactive=False,
            lines=2,
            buttons=["copy"],
            elem_id=f"{tab}-command",
        ),
    }


def _follow_backbone(gr, tab: str, inputs: dict, message) -> None:
    """A new backbone, or an uploaded network, offers its own layers (what is chosen stays where the new
    one has it all); a network that cannot be read is one line on the page."""
    layer_lists = [inputs[name] for name in LAYERS[tab]]

    def on_backbone(name, upload, *chosen):
        try:
            bb = form_backbone({"backbone": name, "network_upload": upload})
        except UserError as exc:
            return [f"**{exc}**", *(gr.update() for _ in layer_lists)]
        lists = layer_choices(tab, bb, chosen)
        return ["", *(gr.update(choices=choices, value=value) for choices, value in lists)]

    for control in (inputs["backbone"], inputs["network_upload"]):
        control.change(
            on_backbone,
            [inputs["backbone"], inputs["network_upload"], *layer_lists],
            [message, *layer_lists],
            concurrency_limit=None,
            api_visibility="private",
        )


def _wire_run(gr, tab: str, inputs: dict, message, outputs: dict, run_button, stop_button, folder, stops, device):
    """Run (one at a time on the device, the picture live) and Stop (the best picture so far kept)."""
    keys = list(inputs)
    picture, status, download, command = (outputs[k] for k in ("picture", "status", "download", "command"))

    def on_run(data, request: gr.Request):
        form = {key: data[inputs[key]] for key in keys}
        uploads = [p for k in keys if k.endswith("_upload") for p in _as_list(form[k])]
        stop = stops[_session(request)] = threading.Event()
        try:
            settings = settings_from_form(tab, form)
            work = WebRun(tab, settings, folder, stop, device)
            yield {message: "", status: "starting…", download: None, command: ""}
            for step in work:
                update = {status: step.line}
                if step.image is not None:
                    update[picture] = step.image
                yield update
            out = work.outcome
            yield {picture: out.image, status: out.line, download: str(out.path), command: out.command}
        except UserError as exc:
            yield {message: f"**{friendly(exc, uploads)}**", status: ""}

    def on_stop(request: gr.Request):
        event = stops.get(_session(request))
        if event is not None:
            event.set()

    on_run.__annotations__["request"] = on_stop.__annotations__["request"] = gr.Request  # (string annotations)
    run_button.click(
        on_run,
        {inputs[k] for k in keys},
        [message, status, picture, download, command],
        concurrency_limit=1,
        concurrency_id="device",
        api_name=f"run_{tab}",
        show_progress="minimal",
    )
    stop_button.click(on_stop, None, None, concurrency_limit=None, api_visibility="private")


def _help(tab: str, name: str) -> str:
    return _field(settings_for(KIND_OF_TAB[tab]), name).metadata["spec"].help


def _as_list(value) -> list:
    if not value:
        return []
    return [value] if isinstance(value, (str, os.PathLike)) else list(value)


def _session(request) -> str:
    return getattr(request, "session_hash", None) or "-"


def _upload_note(files) -> str:
    for path in _as_list(files):
        try:
            check_upload(path)
        except UserError as exc:
            return f"**{exc}**"
    return ""


def theme(gr):
    """Gradio's default theme with the system's fonts (nothing fetched from a font service)."""
    return gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


def serve(host: str = "127.0.0.1", port: int = 7860, device: str | None = None):
    """Start the page on ``host:port``; files (uploads, results, Gradio's cache) go only under one
    temporary folder of the server (the caller removes it when the server stops). Returns (page,
    url, folder)."""
    folder = Path(tempfile.mkdtemp(prefix="dreamstyle-web-"))
    os.environ["GRADIO_TEMP_DIR"] = str(folder / "gradio")  # before Gradio is imported: it reads it then too
    try:
        gr = require_gradio()
        page = build_page(folder, device)
        page.queue(default_concurrency_limit=1)
        try:
            _, url, _ = page.launch(
                server_name=host,
                server_port=port,
                prevent_thread_lock=True,
                quiet=True,
                show_error=False,
                max_file_size=MAX_UPLOAD,
                footer_links=[],
                theme=theme(gr),
                css=CSS,
                share=False,
                ssr_mode=False,
                mcp_server=False,
                inbrowser=False,
            )
        except OSError as exc:
            why = "the port is in use" if "empty port" in str(exc) else (exc.strerror or str(exc))
            raise UserError(f"cannot listen on {host}:{port}: {why}; pass another --port") from None
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return page, url, folder


__all__ = ["build_page", "command_for", "restore", "serve", "settings_from_form", "WebRun"]
