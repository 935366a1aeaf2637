"""Settings: every option of a job, declared once.

Each job kind has one dataclass (:class:`TransferSettings`, :class:`DreamSettings`,
:class:`TextureSettings`, :class:`ReconstructSettings`); a field is one option, and its
:class:`Spec` (in the field's metadata) holds the help text, the check, the command-line flag and
whether the recipe records it. From these fields the command line builds its click options
(``dreamstyle.cli.options``), the Python API builds settings from keyword arguments, and the
recipe in every output is the settings serialized (:meth:`Settings.to_recipe`); replaying a
recipe (``--from``) is :mod:`dreamstyle.replay`.

Checks run when a settings object is made (or changed with :meth:`Settings.replace`): a bad value
is one :class:`~dreamstyle.errors.OptionError` naming the flag and the allowed range, before any
work is done. Checks that need the backbone or the images (layer names, sizes against the
backbone's minimum, pixel limits) run in the job, also before any work.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import importlib.util
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

from .applies import CLIPS, EVERYWHERE, PICTURES, SEQUENCES, AppliesTo, only
from .backbones.own import file_of
from .errors import OptionError, items

# --- bounds ------------------------------------------------------------------------------------
MAX_ITERATIONS = 1_000_000
MAX_SIDE = 65_536  # px; the pixel limit (--max-pixels) bounds the area
MAX_SCALES = 12
MAX_OCTAVES = 32
MAX_SEED = 2**63 - 1
MAX_STYLES = 1024  # style images a --style-mask may name
MAX_CHANNELS = 65_536  # channels an atlas may list (no layer has more)
MAX_INPUT_CHANNELS = 1024  # input channels of your own network (--input-channels)
DEFAULT_MAX_PIXELS = 64_000_000
DEFAULT_MAX_CLIP_PIXELS = 1_000_000_000  # all the frames of a clip together (3 GB decoded)
DEFAULT_SIZE = 512  # px, the long side
# The built-in terms' default weights: the options and the registered terms (default_plugins/losses.py)
# both read these. Content, style and dream terms are relative (dreamstyle.terms.energy), so these mean
# the same balance on every backbone; they were chosen on vgg19 to paint as 0.1's absolute defaults
# (content 5, style 100, dream 1e5: neural-style's) did, and to keep the objective's magnitude (L-BFGS
# stops on tiny gradients), docs/transfer.md#the-default-weights. TV and temporal are in pixel units.
CONTENT_WEIGHT = 3e6
STYLE_WEIGHT = 1.5e7
TV_WEIGHT = 3e4
TEMPORAL_WEIGHT = 1e3
DREAM_WEIGHT = 2e7  # the hybrid's --dream-weight: with the default content and style, dreams show and the
# photo and the style stay (0.1's 1e5 on vgg19's relu4_4, whose rms is about 200 on the sample photos)
# 0.1's defaults, for its absolute terms (a replay of its recipes): a --loss term without a weight, the hybrid
ABSOLUTE_DEFAULTS = {"content": 5.0, "style": 100.0}
ABSOLUTE_DREAM_WEIGHT = 1e5
DEFAULT_PICK = 8  # dream --objective strongest / weakest: channels picked when K is not given
GRADIENTS = ("plain", "lapnorm")  # dream --gradient (dreamstyle.lapnorm)
PARAMS = ("pixel", "fft")  # dream --param (dreamstyle.param)
DREAM_STEP = 0.75  # mean |change| per dream step, 0-255 units: with vgg19 the photo stays recognizable
TRANSFER_INITS = ("content", "noise", "style")
MODEL_INIT = "model:"  # --init model:FILE: a style network's picture of the content
COLOR_MODES = ("luminance", "histogram")
# --style-loss: the style term's name for each (gram: Gatys et al.'s Gram matrices; w2, swd, nn: dreamstyle.distribution)
STYLE_LOSSES = {"gram": "style", "w2": "w2", "swd": "swd", "nn": "nn"}
# --preset: each style loss with the settings measured best for it (benchmarks/README.md, "Style losses graded
# by another network": 256 px, 100 L-BFGS steps, graded on EfficientNet-Lite0); it sets these options where
# they are not given. Layers and iterations were not measured per method: the backbone's and --iterations'.
PRESETS = {
    "gram": {
        "style_loss": "gram",
        "optimizer": "lbfgs",
        "content_weight": CONTENT_WEIGHT,
        "style_weight": STYLE_WEIGHT,
        "tv_weight": TV_WEIGHT,
    },
    "w2": {
        "style_loss": "w2",
        "optimizer": "lbfgs",
        "content_weight": CONTENT_WEIGHT,
        "style_weight": STYLE_WEIGHT,
        "tv_weight": TV_WEIGHT,
    },
    "swd": {
        "style_loss": "swd",
        "optimizer": "lbfgs",
        "content_weight": CONTENT_WEIGHT,
        "style_weight": 4.5e7,
        "tv_weight": TV_WEIGHT,
    },
    "nn": {
        "style_loss": "nn",
        "optimizer": "lbfgs",
        "content_weight": CONTENT_WEIGHT,
        "style_weight": STYLE_WEIGHT,
        "tv_weight": TV_WEIGHT,
    },
}
FLOWS = ("none", "ilk", "tvl1")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
POOLINGS = ("max", "avg")
TERM_SCALES = ("relative", "absolute")  # dreamstyle.terms.term_scale; recipes without one: absolute


@dataclass(frozen=True)
class Spec:
    """What the command line and the recipe need to know of one option."""

    help: str
    check: Callable[[Any, str], Any] | None = None  # (value, flag) -> normalized value, or OptionError
    flag: str | None = None  # the command-line flag; default: --field-name
    type: Any = None  # the click type (default: from the default value); "flag" for an on/off switch
    multiple: bool = False  # a repeatable option
    metavar: str | None = None
    cli: bool = True  # False: the Python API only
    argument: str | None = None  # a positional argument: "one", "optional" or "many"
    recipe: bool = True
    applies_to: AppliesTo = EVERYWHERE  # the kinds of input it goes with (dreamstyle.applies)
    default_text: str | None = None  # what help shows as the default, where the value is computed
    complete: str | None = None  # shell completion: "backbone" or "layer"

    @property
    def bounds(self) -> Bounds | None:
        """The range of a number option (what a form offers: the web page's sliders), or None."""
        return self.check.bounds if isinstance(self.check, Within) else None


def opt(default, help: str, **spec):
    """A settings field: its default and its :class:`Spec`."""
    if isinstance(default, (list, dict, set)):
        raise TypeError("settings defaults are immutable: use a tuple")
    return field(default=default, metadata={"spec": Spec(help, **spec)})


# --- checks ------------------------------------------------------------------------------------


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class Bounds:
    """The range of a number option: from ``lo`` to ``hi`` (more than ``lo`` with ``above``), whole
    numbers only with ``integer``. Declared with the option (its check); a form offers it."""

    lo: float
    hi: float
    above: bool = False
    integer: bool = False


@dataclass(frozen=True)
class Within:
    """The check of a number option within its :class:`Bounds` (None passes with ``allow_none``)."""

    bounds: Bounds
    allow_none: bool = False

    def __call__(self, value, flag):
        if value is None and self.allow_none:
            return None
        return (_whole if self.bounds.integer else _finite)(value, flag, self.bounds)


def _whole(value, flag, b: Bounds) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not b.lo <= value <= b.hi:
        raise OptionError(f"{flag} must be a whole number from {b.lo} to {b.hi:,}, not {value!r}")
    return value


def _finite(value, flag, b: Bounds) -> float:
    lo, hi, above = b.lo, b.hi, b.above
    if not _is_number(value) or not math.isfinite(value) or value > hi or value < lo or (above and value == lo):
        low = f"more than {lo:g}" if above else (f"{lo:g} or more" if lo else "zero or more")
        rng = low if hi == math.inf else f"{low} and at most {hi:g}" if above else f"from {lo:g} to {hi:g}"
        raise OptionError(f"{flag} must be a finite number {rng}, not {value!r}")
    return float(value)


def whole(lo: int = 1, hi: int = MAX_ITERATIONS, allow_none: bool = False) -> Within:
    """A whole number from ``lo`` to ``hi``."""
    return Within(Bounds(lo, hi, integer=True), allow_none)


def number(lo: float = 0.0, hi: float = math.inf, *, above: bool = False, allow_none: bool = False) -> Within:
    """A finite number in [lo, hi] (or (lo, hi] with ``above``)."""
    return Within(Bounds(lo, hi, above), allow_none)


weight_value = number(0.0)  # every loss weight: finite, zero or more
positive = number(0.0, above=True)


def choice(*names: str, allow_none: bool = False):
    def check(value, flag):
        if value is None and allow_none:
            return None
        if value not in names:
            listed = ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else "".join(names)
            raise OptionError(f"{flag} {value!r}: choose {listed or 'nothing here'}")
        return value

    return check


def flow(value, flag):
    """none, ilk or tvl1; the last two need scikit-image, checked now (before any work)."""
    value = choice(*FLOWS)(value or "none", flag)
    if value != "none":
        try:
            import skimage.registration  # noqa: F401
        except ImportError:
            raise OptionError(
                f"{flag} {value} needs scikit-image: pip install 'dreamstyle[flow]' (or scikit-image)"
            ) from None
    return value


def seed(value, flag):
    if value is None:
        return None
    return whole(0, MAX_SEED)(value, flag)


def flag_value(value, flag):
    if not isinstance(value, bool):
        raise OptionError(f"{flag} is on or off (True or False), not {value!r}")
    return value


def text(value, flag):
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise OptionError(f"{flag} must be text, not {value!r}")
    if not str(value).strip():
        raise OptionError(f"{flag} is empty; give a value, or leave the option out")
    return str(value)


def image_input(value, flag):
    """A path, or (Python API) a PIL image or a tensor; kept as given."""
    if value is None:
        return None
    if isinstance(value, os.PathLike):
        return str(value)
    if isinstance(value, str) and not value.strip():
        raise OptionError(f"{flag} is empty; give an image file")
    return value


def image_list(value, flag):
    if value is None or isinstance(value, (str, os.PathLike)) or hasattr(value, "size"):
        value = () if value is None else (value,)
    return tuple(image_input(v, flag) for v in value)


def float_list(value, flag):
    """ "0.7,0.3" or a sequence of numbers -> a tuple of finite weights, zero or more."""
    if value is None:
        return None
    if isinstance(value, str):
        parts = items(value, flag)
        try:
            value = [float(p) for p in parts]
        except ValueError:
            raise OptionError(f"{flag} {value!r} is not a comma list of numbers") from None
    return tuple(weight_value(v, f"{flag} weight") for v in value)


def layer_weights(value, flag):
    """ "relu1_1,relu2_1=0.5" or a mapping -> {layer: weight} (order kept); weights finite, zero or more."""
    if value is None:
        return None
    if isinstance(value, dict):
        pairs = list(value.items())
    else:
        pairs = []
        for item in items(value, flag) if isinstance(value, str) else value:
            name, eq, w = str(item).strip().partition("=")
            if not name.strip():
                raise OptionError(f"{flag} {item!r}: give a layer name" + (" before '='" if eq else ""))
            try:
                pairs.append((name.strip(), float(w) if eq else 1.0))
            except ValueError:
                raise OptionError(f"{flag}: layer weight {w!r} for {name.strip()!r} is not a number") from None
    out = {name: weight_value(w, f"{flag} weight of {name}") for name, w in pairs}
    if not out:
        raise OptionError(f"{flag} is empty")
    return out


def loss_specs(value, flag):
    """``--loss``: "NAME=W:KEY=VALUE:...", several of those, "a=1,b=2", or {name: weight | (weight, {options})}
    -> {name: (weight or None for the term's default, {options})}. A value may hold commas
    ("histogram=10:layers=relu1_1,relu3_1")."""
    if not value:
        return {}
    if isinstance(value, dict):
        pairs = [(name, v if isinstance(v, tuple) else (v, {})) for name, v in value.items()]
    else:
        values = [value] if isinstance(value, str) else value
        pairs = [pair for item in values for pair in _loss_item(str(item), flag)]
    return {
        name: (None if w is None else weight_value(w, f"{flag} {name}"), dict(options)) for name, (w, options) in pairs
    }


def _loss_item(item: str, flag: str) -> list:
    """One ``--loss`` value, "NAME[=W][:KEY=VALUE...]" or "A=1,B=2", as [(name, (weight or None, {options}))];
    an empty name, weight, option or item is refused, not skipped."""
    head, *opt_parts = item.split(":")
    pairs = []
    for part in [head.strip()] if opt_parts else items(head, flag):
        name, eq, w = (x.strip() for x in part.partition("="))
        if not name:
            raise OptionError(f"{flag} {item!r}: give the term's name first (NAME=WEIGHT[:KEY=VALUE])")
        if eq and not w:
            raise OptionError(
                f"{flag} {part!r}: give a weight after '=' (NAME=WEIGHT), or no '=' for the term's default weight"
            )
        try:
            pairs.append((name, float(w) if eq else None))
        except ValueError:
            raise OptionError(f"{flag} {part!r}: the weight must be a number (NAME=WEIGHT)") from None
    options = {}
    for o in opt_parts:  # a term with options is the only one in its value
        key, eq, val = (x.strip() for x in o.partition("="))
        if not eq or not key or not val:
            raise OptionError(f"{flag} {item!r}: options are KEY=VALUE after a colon, not {o!r}")
        options[key] = val
    return [(name, (w, options)) for name, w in pairs]


def dream_objective(value, flag):
    """``mean``, ``l2``, ``strongest[:K]`` or ``weakest[:K]`` (normalized: K spelled out)."""
    mode, colon, k = str(value).partition(":")
    if mode in ("mean", "l2") and not colon:
        return mode
    if mode in ("strongest", "weakest"):
        if not colon:
            return f"{mode}:{DEFAULT_PICK}"
        if k.strip().isdigit():
            return f"{mode}:{whole(1, 100_000)(int(k), flag + ' ' + mode + ':K')}"
    raise OptionError(f"{flag} {value!r}: choose mean, l2, strongest[:K] or weakest[:K] (K channels, like strongest:8)")


def transform_list(value, flag):
    from .transforms import parse_transforms

    return parse_transforms(value, flag)


def specs(value, flag):
    """Dream targets: a spec, several, or {spec: weight} -> a tuple of spec strings."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, dict):
        return tuple(f"{s}={w}" for s, w in value.items())
    return tuple(str(v) for v in value)


def scales(value, flag):
    """``--scales``: a count N (halving down to the output size) or sizes like "256,512"."""
    if value is None or value in (1, "1"):
        return None
    if isinstance(value, str):
        parts = items(value, flag)
        try:
            ints = [int(p) for p in parts]
        except ValueError:
            raise OptionError(f"{flag} {value!r}: give a count N or a list of sizes like 256,512") from None
        value = ints[0] if len(ints) == 1 else tuple(ints)
    if isinstance(value, int):
        count = whole(1, MAX_SCALES)(value, f"{flag} (a count)")
        return None if count == 1 else count
    sizes = tuple(sorted(whole(1, MAX_SIDE)(int(s), f"{flag} sizes") for s in value))
    if len(sizes) > MAX_SCALES:
        raise OptionError(f"{flag} lists {len(sizes)} sizes; at most {MAX_SCALES}")
    return sizes


def texture_size(value, flag):
    """``--size N`` (a square) or ``WxH``."""
    if isinstance(value, str):
        w, x, h = value.lower().partition("x")
        try:
            value = (int(w), int(h)) if x else int(w)
        except ValueError:
            raise OptionError(f"{flag} {value!r}: give N or WxH, like 512 or 768x512") from None
    if isinstance(value, int):
        value = (value, value)
    return tuple(whole(1, MAX_SIDE)(v, flag) for v in value)


def transfer_init(value, flag):
    """content, noise, style, an image file, or model:FILE (a style network's picture of the content; a
    near miss of a name is refused with a suggestion)."""
    if value is None:
        return "content"
    if isinstance(value, (str, os.PathLike)):
        value = str(value)
        if value.startswith(MODEL_INIT):
            model = value[len(MODEL_INIT) :]
            if not model.lower().endswith(".dsm") or not os.path.isfile(model):
                raise OptionError(f"{flag} {value}: give model:FILE, a .dsm model file that dreamstyle train wrote")
            return value
        if not value.strip():
            raise OptionError(f"{flag} is empty; give content, noise, style or an image file")
        if value not in TRANSFER_INITS and not os.path.exists(value):
            close = difflib.get_close_matches(value, TRANSFER_INITS, n=1, cutoff=0.6)
            if close:
                raise OptionError(
                    f"{flag} {value!r} is not content, noise, style or an image file; did you mean {close[0]!r}?"
                )
    return value


def style_masks(value, flag):
    """``--style-mask``: "N=MASK" (N: 1 for the first style image) or "MASK" (the next style in order),
    repeatable -> a tuple of mask paths by style image, "" for a style without one."""
    if not value:
        return ()
    if isinstance(value, (str, os.PathLike)):
        value = (value,)
    out: dict[int, str] = {}
    following = 0
    for item in value:
        text = str(item)
        head, eq, rest = text.partition("=")
        if eq and head.strip().isdigit():
            index, path = int(head), rest.strip()
            if not 1 <= index <= MAX_STYLES:
                raise OptionError(f"{flag} {text!r}: style images count from 1 (to at most {MAX_STYLES:,})")
            if not path:
                raise OptionError(f"{flag} {text!r}: give a mask file after '='")
        else:
            index, path = following + 1, text.strip()
        if index in out and out[index]:
            raise OptionError(f"{flag}: style image {index} has two masks")
        out[index], following = path, index
    masks = tuple(out.get(i, "") for i in range(1, max(out) + 1))
    if not masks[-1]:  # "" is a style without a mask, before one with a mask; nothing after it
        raise OptionError(f"{flag} is empty; give a mask file")
    return masks


def tile_size(value, flag):
    """``--tile``: None (automatic: tiles only when the picture would not fit), 0 (never) or a size."""
    if value is None or value == "auto":
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    return whole(0, MAX_SIDE)(value, flag)


TILE_HELP = (
    "Make pictures larger than this in tiles of this size, exactly (bounded memory); 0: never; "
    "default: only when the picture would not fit in memory."
)
TILE_OVERLAP_HELP = "Context around each tile, px (the deepest layer's receptive field)."


def number_list(value, flag):
    """ "0.5" or "0.485,0.456,0.406" (or a sequence) -> a tuple of finite numbers."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        value = (value,)
    parts = items(value, flag) if isinstance(value, str) else list(value)
    try:
        numbers = tuple(float(p) for p in parts)
    except (TypeError, ValueError):
        raise OptionError(f"{flag} {value!r} is not a comma list of numbers") from None
    if not all(math.isfinite(n) for n in numbers) or len(numbers) > MAX_INPUT_CHANNELS:
        raise OptionError(f"{flag} {value!r}: give 1 to {MAX_INPUT_CHANNELS} finite numbers")
    if flag == "--std" and any(n <= 0 for n in numbers):
        raise OptionError(f"{flag} {value!r}: a divisor is more than 0")
    return numbers


def value_range(value, flag):
    """``--input-range`` "0,255" -> (0.0, 255.0), low below high."""
    numbers = number_list(value, flag)
    if numbers is None:
        return None
    if len(numbers) != 2 or not numbers[0] < numbers[1]:
        raise OptionError(f"{flag} {value!r}: give LO,HI with LO below HI, like 0,1 or 0,255")
    return numbers


def three_channels(value, flag):
    """``--show-channels`` "0,1,2" -> (0, 1, 2): the input channel each of R, G, B feeds."""
    if value is None:
        return None
    parts = items(value, flag) if isinstance(value, str) else list(value)
    if len(parts) != 3 or not all(str(p).strip().isdigit() for p in parts):
        raise OptionError(f"{flag} {value!r}: give three channel numbers, for R, G and B, like 0,1,2 or 3,2,1")
    return tuple(int(p) for p in parts)


def registered(kind: str, allow_none: bool = False):
    """A name that a registry (filled by plugins) must know: checked when the job runs."""

    def check(value, flag):
        if value is None and allow_none:
            return None
        if not isinstance(value, str) or not value.strip():
            raise OptionError(f"{flag} must name a {kind}, not {value!r}")
        return value.strip()

    return check


# --- the settings classes ----------------------------------------------------------------------


@dataclass
class Settings:
    """Base of every job's settings: the options all jobs share."""

    KIND: ClassVar[str] = ""
    INPUTS: ClassVar[tuple] = ("still",)  # the kinds of input the command takes (dreamstyle.applies)

    backbone: str = opt(
        "vgg19", "Backbone name (see: dreamstyle backbones).", check=registered("backbone"), complete="backbone"
    )
    weights: str | None = opt(
        None, "'random', a state-dict FILE, or omit for the backbone's pretrained weights.", check=text
    )
    pooling: str = opt("max", "Pooling of VGG-like backbones: max or avg.", check=choice(*POOLINGS), type=POOLINGS)
    input_channels: int | None = opt(
        None,
        "Your own network (--backbone FILE): the channels it takes.",
        check=whole(1, MAX_INPUT_CHANNELS, allow_none=True),
        type=int,
        default_text="its first convolution's",
    )
    mean: tuple | None = opt(
        None,
        "Your own network: the mean taken from each input channel, in --input-range units (one value, or one "
        "per channel).",
        check=number_list,
        type=str,
        metavar="M[,M...]",
        default_text="0",
    )
    std: tuple | None = opt(
        None,
        "Your own network: the divisor of each input channel, in --input-range units (one, or one per channel).",
        check=number_list,
        type=str,
        metavar="S[,S...]",
        default_text="1",
    )
    input_range: tuple | None = opt(
        None,
        "Your own network: the values its input spans from black to white, like 0,1 or 0,255.",
        check=value_range,
        type=str,
        metavar="LO,HI",
        default_text="0,1",
    )
    show_channels: tuple | None = opt(
        None,
        "Your own network: the input channel each of the picture's R, G and B feeds (several on one channel: "
        "their mean; 0,0,0 is a greyscale picture).",
        check=three_channels,
        type=str,
        metavar="R,G,B",
        default_text="0,1,2; 0,0,0 for 1 channel",
    )
    hold_value: float | None = opt(
        None,
        "Your own network: the value (0 to 1 of --input-range) of the input channels the picture does not feed.",
        check=number(0.0, 1.0, allow_none=True),
        type=float,
        default_text="each one's --mean, else 0.5",
    )
    device: str = opt("auto", "auto, cpu, cuda or cuda:N.", check=text)
    seed: int | None = opt(
        None, "Random seed (recorded in the output; the same seed gives the same image).", check=seed, type=int
    )
    precision: str = opt(
        "auto",
        "Feature precision: auto = bf16 autocast on CUDA and on CPUs with native bf16, else fp32.",
        check=choice(*PRECISIONS),
        type=PRECISIONS,
    )
    size: int | None = opt(
        DEFAULT_SIZE, "Long side of the output, px.", check=whole(1, MAX_SIDE, allow_none=True), type=int
    )
    iterations: int = opt(500, "Optimizer steps (per scale or octave).", check=whole(1, MAX_ITERATIONS))
    optimizer: str = opt(
        "lbfgs",
        "Optimizer (see: dreamstyle optimizers; built in: lbfgs, adam, normalized).",
        check=registered("optimizer"),
    )
    lr: float | None = opt(
        None,
        "Learning rate / step size, 0-255 pixel units (default: the optimizer's).",
        check=number(0.0, above=True, allow_none=True),
        type=float,
    )
    losses: dict = opt(
        (),
        "Add a registered loss term, its options after colons: histogram=10:layers=relu1_1,relu3_1; repeatable.",
        check=loss_specs,
        flag="--loss",
        multiple=True,
        metavar="NAME[=WEIGHT][:KEY=VALUE...]",
        type=str,
    )
    preserve_color: str | None = opt(
        None,
        "Keep the content's colours: luminance or histogram.",
        check=choice(*COLOR_MODES, allow_none=True),
        type=COLOR_MODES,
        applies_to=PICTURES,
    )
    compile: bool = opt(
        False,
        "torch.compile the feature network (slower start, faster steps; best on CUDA).",
        check=flag_value,
        type="flag",
    )
    max_pixels: int = opt(
        DEFAULT_MAX_PIXELS, "Refuse inputs, and outputs, with more pixels than this.", check=whole(1, 10_000_000_000)
    )
    log_every: int = opt(
        1,
        "Log losses every N iterations (--log-json); given, off a terminal, print each "
        "logged step (by default: about every tenth of a stage).",
        check=whole(1, MAX_ITERATIONS),
        recipe=False,
    )
    term_scale: str = opt(
        "relative",
        "How the feature terms are scaled: relative (each layer's error over its "
        "target's energy, the same on every backbone) or absolute (the plain squared errors of "
        "dreamstyle 0.1, which replays of its recipes use).",
        check=choice(*TERM_SCALES),
        cli=False,
    )

    def __post_init__(self):
        for f in dataclasses.fields(self):
            if "spec" in f.metadata:
                setattr(self, f.name, checked(f, getattr(self, f.name)))
        self.check_together()

    def check_together(self) -> None:
        """Checks across options (subclasses)."""

    # --- description ------------------------------------------------------------------------
    @classmethod
    def fields(cls) -> list[dataclasses.Field]:
        return [f for f in dataclasses.fields(cls) if "spec" in f.metadata]

    @classmethod
    def names(cls) -> set[str]:
        return {f.name for f in cls.fields()}

    @classmethod
    def applicability(cls) -> dict[str, tuple[str, AppliesTo]]:
        """Each option's flag and the kinds of input it goes with (:func:`dreamstyle.applies.refuse`)."""
        return {f.name: (flag_of(f), f.metadata["spec"].applies_to) for f in cls.fields()}

    def replace(self, **changes) -> Settings:
        return dataclasses.replace(self, **changes)

    # --- the recipe ---------------------------------------------------------------------------
    def to_recipe(self, paths: str = "full") -> dict:
        """The settings as plain data: every recorded option by name, and ``inputs``: the SHA-256 of
        each input file by name (so a replay can find it again, and tell it is the same file).
        ``paths``: "full" keeps input paths as given, "names" keeps file names only (the recipe
        travels inside every output, and a path names someone's folders)."""
        out = {"command": self.KIND}
        for f in self.fields():
            if f.metadata["spec"].recipe:
                files = f.name in INPUT_FIELDS or (f.name == "backbone" and file_of(self.backbone) is not None)
                out[f.name] = plain(getattr(self, f.name), paths, files=files)
        if getattr(self, "preset", None):  # what the preset set (the options given beat it)
            out["preset_values"] = plain(preset_values(self))
        out["inputs"] = {Path(v).name: file_hash(v) for v in self.input_files()}
        return out

    def input_files(self) -> list:
        """Every input file the settings name (the image options' values that are files), in field
        order: the same order in every process (the recipe's bytes), each once."""
        files = []
        for name in [f.name for f in self.fields() if f.name in INPUT_FIELDS]:
            value = getattr(self, name)
            for v in value if isinstance(value, tuple) else (value,):
                if isinstance(v, str) and v.startswith(MODEL_INIT):  # --init model:FILE: the model file
                    v = v[len(MODEL_INIT) :]
                if isinstance(v, (str, os.PathLike)) and os.path.isfile(v) and v not in files:
                    files.append(v)
        model = file_of(self.backbone) if isinstance(self.backbone, str) else None
        if model is not None and os.path.isfile(model) and model not in files:  # your own network's file
            files.append(model)
        return files


INPUT_FIELDS = {"content", "styles", "input", "image", "guide", "init", "weights", "style_masks", "content_mask"}
_hashes: dict[tuple, str] = {}


def file_hash(path) -> str:
    """SHA-256 of a file (remembered per path, size and modification time)."""
    st = os.stat(path)
    key = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
    if key not in _hashes:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        _hashes[key] = digest.hexdigest()
    return _hashes[key]


def checked(f: dataclasses.Field, value):
    """``value`` as option ``f`` reads it, or one OptionError naming its flag: a value out of range,
    and one of a kind the option cannot read at all (a number where text or a list is due, from the
    Python API or a recipe)."""
    check = f.metadata["spec"].check
    if check is None:
        return value
    try:
        return check(value, flag_of(f))
    except (TypeError, ValueError, AttributeError):
        raise OptionError(f"{flag_of(f)} cannot be {short_repr(value)}") from None


def short_repr(value, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters (a value from a stranger's file may be long)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def flag_of(f: dataclasses.Field) -> str:
    spec = f.metadata["spec"]
    if spec.argument:
        return f.name.upper()
    return spec.flag or "--" + f.name.replace("_", "-")


def plain(value, paths: str = "full", files: bool = False):
    """A settings value as JSON-able data; images given as objects become "<image>". With ``paths``
    "names", text that names a file is its file name only: any text of an option that takes files
    (``files``: the inputs, the weights), else text that is a path (an existing one, an absolute one,
    one from home)."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        if isinstance(value, str) and value.startswith(MODEL_INIT) and files:  # --init model:FILE
            return MODEL_INIT + plain(value[len(MODEL_INIT) :], paths, files)
        if paths == "names" and isinstance(value, str) and (files or _is_path(value)):
            return value.replace("\\", "/").rsplit("/", 1)[-1]
        return value
    if isinstance(value, os.PathLike):
        return plain(str(value), paths, files)
    if isinstance(value, dict):
        return {str(k): plain(v, paths, files) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [plain(v, paths, files) for v in value]
    return "<image>"


def _is_path(text: str) -> bool:
    if os.sep not in text and "/" not in text:
        return False
    return os.path.exists(text) or os.path.isabs(text) or text.startswith(("~", ".."))


@dataclass
class SequenceOptions:
    """Options of clips and folders (a still image refuses them)."""

    frames: bool = opt(
        False,
        "INPUT is a folder of a clip's frames (sorted by name), not of still images.",
        check=flag_value,
        type="flag",
        recipe=False,
        applies_to=only("clip"),
    )
    batch: int = opt(
        1,
        "Clips and folders: optimize N frames or same-size images at once (GPU memory allowing).",
        check=whole(1, 4096),
        applies_to=SEQUENCES,
    )
    temporal_weight: float = opt(
        TEMPORAL_WEIGHT,
        "Clips: weight of the temporal term (holds still what did not move; 0: off).",
        check=weight_value,
        applies_to=only(*CLIPS),
    )
    temporal_init: float = opt(
        0.0,
        "Clips: start each frame from the previous output carried along the "
        "content's change, blended with F of its own start (1: independent frames).",
        check=number(0.0, 1.0),
        applies_to=only(*CLIPS),
    )
    flow: str = opt(
        "none",
        "Clips: warp the previous frame along optical flow (needs scikit-image).",
        check=flow,
        type=FLOWS,
        applies_to=only(*CLIPS),
    )
    frame_iterations: int | None = opt(
        None,
        "Clips: optimizer steps for each frame after the first.",
        check=whole(1, MAX_ITERATIONS, allow_none=True),
        type=int,
        default_text="--iterations",
        applies_to=only(*CLIPS, "zoom"),
    )
    fps: float | None = opt(
        None,
        "Clips: frame rate, overriding the source's timing (a folder of frames: 10).",
        check=number(0.01, 1000.0, allow_none=True),
        type=float,
        applies_to=only(*CLIPS, "zoom"),
    )
    start: float = opt(0.0, "Videos: begin this many seconds in.", check=number(0.0, 10**7), applies_to=only("video"))
    duration: float | None = opt(
        None,
        "Videos: make this many seconds (from --start).",
        check=number(0.0, 10**7, above=True, allow_none=True),
        type=float,
        default_text="to the end",
        applies_to=only("video"),
    )
    max_clip_pixels: int = opt(
        DEFAULT_MAX_CLIP_PIXELS,
        "Clips: refuse clips whose frames hold more pixels than "
        "this in all (frames x width x height, read from the header before decoding).",
        check=whole(1, 10**12),
        recipe=False,
        applies_to=only(*CLIPS),
    )


def executor_spec(value, flag):
    """local, ray or ray:ADDRESS; ray needs the optional extra, checked now (before any work)."""
    value = "local" if value is None else str(value).strip()
    kind, colon, address = value.partition(":")
    if kind not in ("local", "ray") or (kind == "local" and colon) or (colon and not address.strip()):
        raise OptionError(f"{flag} {value!r}: choose local, ray or ray:ADDRESS (the host:port of a Ray head)")
    if kind == "ray" and importlib.util.find_spec("ray") is None:
        raise OptionError(f"{flag} {value} needs Ray: pip install 'dreamstyle[ray]'")
    return value


INDEPENDENT = only("folder", "grid")  # where items are independent of each other: an executor runs them


@dataclass
class ExecutorOptions:
    """Where independent items run (a folder of still images, compare, sweep): not in the recipe, since
    the pictures are the same wherever they are made."""

    executor: str = opt(
        "local",
        "Where a folder's images, a sweep's or a comparison's cells run: local (this "
        "process), ray (a Ray instance on this machine, or the one RAY_ADDRESS names) or "
        "ray:ADDRESS (a running Ray cluster: its head's host:port).",
        check=executor_spec,
        metavar="local|ray|ray:ADDRESS",
        recipe=False,
        applies_to=INDEPENDENT,
    )
    workers: int | None = opt(
        None,
        "With --executor ray: how many workers (each loads the backbone once).",
        check=whole(1, 4096, allow_none=True),
        type=int,
        recipe=False,
        default_text="one per GPU of the cluster, else its CPUs / this process's torch threads",
        applies_to=INDEPENDENT,
    )


def vary_specs(value, flag):
    """``--vary OPTION=V1,V2,...`` (repeatable; values holding commas are separated by ``;``) ->
    ((option, (values...)), ...), the option as its flag without dashes or its field name."""
    out = []
    for item in (value,) if isinstance(value, str) else (value or ()):
        name, eq, values = str(item).partition("=")
        name = name.strip().lstrip("-")
        if not eq or not name or not values.strip():
            raise OptionError(f"{flag} {item!r}: give OPTION=VALUE1,VALUE2,... (e.g. style-weight=1e2,1e3)")
        parts = items(values, f"{flag} {name}", ";" if ";" in values else ",")
        if any(name == seen for seen, _ in out):
            raise OptionError(f"{flag} {name} is given twice; give its values in one --vary")
        out.append((name, tuple(parts)))
    return tuple(out)


@dataclass
class SweepOptions:
    """The options of ``dreamstyle sweep`` beside the job's own."""

    vary: tuple = opt(
        (),
        "A grid axis: OPTION=V1,V2,... (any option of the job; ';' separates values that hold "
        "commas). Repeatable: every combination is one cell.",
        check=vary_specs,
        multiple=True,
        metavar="OPTION=V1,V2,...",
        type=str,
    )
    judge: str | None = opt(
        "vgg19",
        "Grade each picture on this network (dreamstyle score): its content and style "
        "distances in the tables. NAME, NAME:random, NAME:pretrained or NAME:weights=FILE (as in "
        "compare's --backbones; unsaid: --weights on the run's backbone or when random, else "
        "pretrained); none: no grades.",
        check=text,
        metavar="BACKBONE",
        recipe=False,
    )


@dataclass
class TransferSettings(ExecutorOptions, SequenceOptions, Settings):
    """Style transfer (Gatys et al.): CONTENT painted in the style of STYLE; the hybrid adds dream terms."""

    KIND: ClassVar[str] = "transfer"
    INPUTS: ClassVar[tuple] = ("still", "clip", "video", "folder", "grid")

    content: Any = opt(None, "The content image (or clip, or folder).", check=image_input, argument="one")
    size: int | None = opt(
        None,
        "Long side of the output, px (with --scales 256,512: the last).",
        check=whole(1, MAX_SIDE, allow_none=True),
        type=int,
        default_text=str(DEFAULT_SIZE),
    )
    styles: tuple = opt((), "The style images.", check=image_list, argument="many")
    style_scale: float = opt(1.0, "Style image size relative to the output.", check=number(0.0, 16.0, above=True))
    style_blend: tuple | None = opt(None, "Weights of the style images: w1,w2,...", check=float_list, type=str)
    content_layers: dict | None = opt(
        None,
        "Comma list of layers (LAYER or LAYER=WEIGHT).",
        check=layer_weights,
        type=str,
        default_text="the backbone's",
    )
    style_layers: dict | None = opt(
        None,
        "Comma list of layers (LAYER or LAYER=WEIGHT).",
        check=layer_weights,
        type=str,
        default_text="the backbone's",
    )
    content_weight: float = opt(
        CONTENT_WEIGHT,
        "Weight of the content term (relative: each layer's error over "
        "the content's energy there, the same balance on every backbone).",
        check=weight_value,
    )
    style_weight: float = opt(
        STYLE_WEIGHT,
        "Weight of the style term (relative: each layer's Gram error over the style Gram's energy).",
        check=weight_value,
    )
    style_loss: str = opt(
        "gram",
        "How the style is matched: gram (Gram matrices, Gatys et al.), w2 (Gaussian "
        "fits, Wasserstein-2), swd (sliced Wasserstein; no --tile) or nn (nearest style features, "
        "NNST; no --tile).",
        check=choice(*STYLE_LOSSES),
        type=tuple(STYLE_LOSSES),
    )
    preset: str | None = opt(
        None,
        "A style loss with the settings measured best for it: gram, w2, swd or nn "
        "(--style-loss, --optimizer and the weights, each unless given; "
        "benchmarks/README.md).",
        check=choice(*PRESETS, allow_none=True),
        type=tuple(PRESETS),
        applies_to=PICTURES,
    )
    tv_weight: float = opt(
        TV_WEIGHT, "Total variation: W x mean |neighbour difference| (0-255); smooths speckle.", check=weight_value
    )
    init: str = opt(
        "content",
        "Start from: content, noise, style, an image FILE, or model:FILE "
        "(a style network's picture of the content: fewer steps to the same losses).",
        check=transfer_init,
        applies_to=PICTURES,
    )
    scales: Any = opt(
        None,
        "Coarse-to-fine: a count N, or sizes like 256,512 (clips: the first frame).",
        check=scales,
        type=str,
        applies_to=PICTURES,
    )
    dream_layers: tuple = opt(
        (),
        "The hybrid: also maximize this layer (LAYER, LAYER:C, LAYER:C1,C2, LAYER:C@Y,X, "
        "=WEIGHT), or 'auto' for one neither content nor style uses. Repeatable.",
        check=specs,
        flag="--dream-layer",
        multiple=True,
        metavar="SPEC",
        type=str,
    )
    dream_weight: float | None = opt(
        None,
        "Weight of the dream term (relative: the same on every backbone).",
        check=number(0.0, allow_none=True),
        type=float,
        default_text=f"{DREAM_WEIGHT:g}",
    )
    allow_overlap: bool = opt(
        False, "Let a --dream-layer be a content or style layer too.", check=flag_value, type="flag"
    )
    style_masks: tuple = opt(
        (),
        "Where a style goes: N=MASK (N: 1 for the first style image) or MASK for the next; "
        "a greyscale image or a PNG's alpha, white = this style. Repeatable.",
        check=style_masks,
        flag="--style-mask",
        multiple=True,
        metavar="[N=]MASK",
        type=str,
        applies_to=PICTURES,
    )
    content_mask: Any = opt(
        None,
        "Keep the photo where this mask is white (a face): the style is weighed down "
        "there; a greyscale image or a PNG's alpha.",
        check=image_input,
        type=str,
        metavar="MASK",
        applies_to=PICTURES,
    )
    tile: int | None = opt(
        None, TILE_HELP, check=tile_size, type=str, metavar="PX|auto", default_text="auto", applies_to=PICTURES
    )
    tile_overlap: int | None = opt(
        None,
        TILE_OVERLAP_HELP,
        check=whole(0, 4096, allow_none=True),
        type=int,
        default_text="from the layers",
        applies_to=PICTURES,
    )

    def check_together(self) -> None:
        if self.content is None:
            raise OptionError("give a content image")
        if not self.styles:
            raise OptionError("give at least one style image")
        if self.style_blend is not None:
            if len(self.style_blend) != len(self.styles):
                raise OptionError(
                    f"--style-blend has {len(self.style_blend)} weights for {len(self.styles)} style images"
                )
            if sum(self.style_blend) <= 0:
                raise OptionError("--style-blend weights must be zero or more and not all zero")
        if not self.dream_layers and (self.dream_weight is not None or self.allow_overlap):
            raise OptionError("--dream-weight and --allow-overlap go with --dream-layer")
        check_masks(self.style_masks, len(self.styles))
        if isinstance(self.scales, tuple):
            if self.size is not None and max(self.scales) != self.size:
                raise OptionError(
                    f"--scales {','.join(map(str, self.scales))} ends at {max(self.scales)} px but "
                    f"--size is {self.size}; give one of them, or make them agree"
                )
            self.size = max(self.scales)
        elif self.size is None:
            self.size = DEFAULT_SIZE


@dataclass
class DreamSettings(ExecutorOptions, SequenceOptions, Settings):
    """DeepDream: INPUT with what the network sees in it, amplified (octaves, jitter, tiles)."""

    KIND: ClassVar[str] = "dream"
    INPUTS: ClassVar[tuple] = ("still", "clip", "video", "folder", "zoom", "grid")

    input: Any = opt(
        None,
        "The image (or clip, or folder) to dream on; optional with --init noise.",
        check=image_input,
        argument="optional",
    )
    layers: tuple = opt(
        (),
        "What to maximize: LAYER, LAYER:C, LAYER:C1,C2 (channels) or LAYER:C@Y,X (one neuron, "
        "in the layer's grid); =WEIGHT weighs it (negative: suppress). Repeatable.",
        check=specs,
        flag="--layer",
        multiple=True,
        metavar="SPEC",
        type=str,
        default_text="the backbone's dream layer",
        complete="layer",
    )
    iterations: int = opt(10, "Steps per octave.", check=whole(1, MAX_ITERATIONS))
    optimizer: str | None = opt(
        None,
        "normalized: DeepDream's gradient ascent step; or any registered optimizer (see: dreamstyle optimizers).",
        check=registered("optimizer", allow_none=True),
        type=str,
        default_text="normalized; adam with --param fft",
    )
    lr: float | None = opt(
        None,
        "Step size: mean pixel change per step, 0-255 units.",
        flag="--step",
        check=number(0.0, above=True, allow_none=True),
        type=float,
        default_text=f"{DREAM_STEP:g}",
    )
    objective: str = opt(
        "mean",
        "mean: the mean activation; l2: its mean square (the original's); "
        "strongest[:K] / weakest[:K]: the K channels of each layer the input excites most / least "
        f"(picked once, at the first octave; K={DEFAULT_PICK} if not given).",
        check=dream_objective,
        type=str,
        metavar="MODE",
    )
    octaves: int = opt(4, "Number of octaves (image scales).", check=whole(1, MAX_OCTAVES))
    octave_scale: float = opt(1.4, "Size ratio between octaves (detail is carried up).", check=number(1.0, 16.0))
    jitter: int = opt(32, "Random roll each step, px (the jitter of --transforms).", check=whole(0, 4096))
    transforms: str = opt(
        "jitter",
        "Random transformations before each step, the gradient taken through them: "
        "jitter (by --jitter), scale[=F] (a factor in 1±F, 0.05), rotate[=D] (±D degrees, 5), flip; "
        "comma separated, or none.",
        check=transform_list,
        metavar="LIST",
    )
    gradient: str = opt(
        "plain",
        "lapnorm: normalize each band of the gradient's Laplacian pyramid (large shapes "
        "grow as well as fine detail); plain: as it is.",
        check=choice(*GRADIENTS),
        type=GRADIENTS,
    )
    param: str = opt(
        "pixel",
        "What the optimizer moves: pixel, or fft (a decorrelated-colour Fourier spectrum: "
        "readable visualizations from --init noise).",
        check=choice(*PARAMS),
        type=PARAMS,
    )
    blur: float = opt(
        0.0,
        "Blur the picture by this Gaussian sigma (px) after each step: a smoothness regularizer.",
        check=number(0.0, 8.0),
    )
    decay: float = opt(
        0.0,
        "Pull the picture toward grey by this fraction after each step: an L2 decay regularizer.",
        check=number(0.0, 0.5),
    )
    tile: int = opt(
        1024,
        "Images larger than this are dreamed in tiles of this size (bounded memory); 0: never.",
        check=whole(0, MAX_SIDE),
    )
    tile_overlap: int | None = opt(
        None,
        "Extra context around each tile, px.",
        check=whole(0, 4096, allow_none=True),
        type=int,
        default_text="8 x the layer's stride",
    )
    guide: Any = opt(None, "Dream toward the features of this image (controlling dreams).", check=image_input, type=str)
    init: str = opt(
        "image",
        "noise: visualize the layer or channel from noise (INPUT then only sets the aspect).",
        check=choice("image", "noise"),
        type=("image", "noise"),
        applies_to=only("still", "zoom", "grid", why="a clip or folder has images to start from"),
    )
    samples: int = opt(
        1,
        "With --init noise: N pictures at once, side by side, each from its own noise "
        "(--loss diversity=W pushes them apart).",
        check=whole(1, 64),
        applies_to=only("still", "zoom", "grid", why="a clip or folder has its own pictures"),
    )
    temporal_weight: float = opt(
        0.0,
        "Clips: weight of a temporal term (holds still what did not move; 0: off).",
        check=weight_value,
        applies_to=only(*CLIPS),
    )
    temporal_init: float = opt(
        0.5,
        "Clips: dream each frame from the previous dream carried along the content's "
        "change, blended with F of the new frame (1: independent frames).",
        check=number(0.0, 1.0),
        applies_to=only(*CLIPS),
    )
    zoom_frames: int = opt(
        0,
        "Infinite zoom: N frames from a still INPUT, each the previous dream zoomed (and "
        "rotated) about the centre and dreamed again (-o a video, .gif, .webp, .png or a folder).",
        check=whole(0, 1_000_000),
        applies_to=only("still", "zoom", "grid", where="a single image", why="a clip or folder has frames of its own"),
    )
    zoom: float = opt(1.05, "Zoom: scale from one frame to the next (below 1 zooms out).", check=number(0.5, 4.0))
    rotate: float = opt(0.0, "Zoom: rotation from one frame to the next, degrees.", check=number(-180.0, 180.0))

    def check_together(self) -> None:
        if self.input is None and self.init != "noise":
            raise OptionError("give an input image (or --init noise to dream from noise)")
        if self.samples > 1 and self.init != "noise":
            raise OptionError("--samples N goes with --init noise (N visualizations from noise, side by side)")
        if self.param == "fft" and (self.blur or self.decay):
            raise OptionError(
                f"{'--blur' if self.blur else '--decay'} acts on pixels; with --param fft the "
                "spectrum's 1/frequency scale already favours smooth pictures (use --param pixel)"
            )
        if not self.zoom_frames and (self.zoom != 1.05 or self.rotate):
            raise OptionError(
                f"{'--zoom' if self.zoom != 1.05 else '--rotate'} goes with --zoom-frames N (an infinite zoom)"
            )


def like(cls, name: str, default=dataclasses.MISSING, help: str | None = None):
    """The option ``name`` of ``cls`` again (its check, flag, type), with another default or help:
    one declaration, shared by the jobs that take it."""
    f = cls.__dataclass_fields__[name]
    spec = f.metadata["spec"]
    spec = dataclasses.replace(
        spec, help=help or spec.help, default_text=None if default is not dataclasses.MISSING else spec.default_text
    )
    return field(default=f.default if default is dataclasses.MISSING else default, metadata={"spec": spec})


@dataclass
class VisualizeOptions:
    """How channels are visualized from noise (atlas, activations): dream's options, other defaults."""

    iterations: int = like(DreamSettings, "iterations", 128, "Steps per visualization.")
    lr: float | None = like(DreamSettings, "lr")
    optimizer: str | None = like(DreamSettings, "optimizer")
    param: str = like(DreamSettings, "param", "fft")
    transforms: str = like(DreamSettings, "transforms", "jitter,scale,rotate")
    jitter: int = like(DreamSettings, "jitter", 8)
    gradient: str = like(DreamSettings, "gradient")
    batch: int = opt(16, "Channels visualized at once (memory allowing).", check=whole(1, 4096))
    columns: int | None = opt(
        None,
        "Cells per row of the sheet (default: near-square).",
        check=whole(1, 100, allow_none=True),
        type=int,
        recipe=False,
    )
    preserve_color: str | None = opt(None, "Not for visualizations.", check=choice(allow_none=True), cli=False)


def channel_list(value, flag):
    """``"0-63"``, ``"3,7,12-15"`` or a list of ints -> a tuple of channels (order kept, once each)."""
    if isinstance(value, range):  # listed only once its length is checked
        value = f"{value.start}-{value.stop - 1}" if value.step == 1 and value else list(value)
    if not isinstance(value, (tuple, list)) and not str(value).strip():
        raise OptionError(f"{flag}: give at least one channel (like 0-63)")
    parts = [str(v) for v in value] if isinstance(value, (tuple, list)) else items(value, flag)
    spans = []
    for part in parts:
        lo, dash, hi = part.partition("-")
        try:
            spans.append(range(int(lo), int(hi) + 1) if dash else range(int(lo), int(lo) + 1))
        except ValueError:
            raise OptionError(f"{flag} {value!r}: give channels like 0-63 or 3,7,12-15") from None
        if not spans[-1]:  # "5-3" (a minus sign cannot parse: channels are never negative)
            raise OptionError(f"{flag} {part!r}: a range goes up (like 0-63)")
    if sum(len(span) for span in spans) > MAX_CHANNELS:  # counted before any is listed: "0-99999999" is instant
        raise OptionError(
            f"{flag} {value!r} names {sum(len(span) for span in spans):,} channels; a layer has at "
            f"most {MAX_CHANNELS:,} (see: dreamstyle layers BACKBONE)"
        )
    if not spans:
        raise OptionError(f"{flag}: give at least one channel (like 0-63)")
    return tuple(dict.fromkeys(c for span in spans for c in span))


@dataclass
class AtlasSettings(VisualizeOptions, Settings):
    """One visualization per channel of LAYER, from noise, in a labelled grid."""

    KIND: ClassVar[str] = "channels"  # the command's name (atlas before: its recipes say so)

    backbone: str = opt(
        "vgg19",
        "Backbone name (see: dreamstyle backbones).",
        check=registered("backbone"),
        argument="one",
        complete="backbone",
        type=str,
    )
    layer: str = opt(
        None, "The layer (see: dreamstyle layers BACKBONE).", check=text, argument="one", complete="layer", type=str
    )
    channels: tuple = opt("0-15", "Channels: a range or a list, like 0-63 or 3,7,12-15.", check=channel_list, type=str)
    size: int | None = opt(128, "Side of each visualization, px.", check=whole(1, MAX_SIDE), type=int)


@dataclass
class ActivationsSettings(VisualizeOptions, Settings):
    """Which channels of a layer IMAGE excites most: the top K with their values, their activation
    maps over the image, and their visualizations from noise."""

    KIND: ClassVar[str] = "activations"

    image: Any = opt(None, "The image.", check=image_input, argument="one")
    layer: str | None = opt(
        None,
        "The layer (see: dreamstyle layers BACKBONE).",
        check=text,
        default_text="the backbone's dream layer",
        complete="layer",
    )
    top: int = opt(8, "How many channels: the K the image excites most.", check=whole(1, 4096))
    size: int | None = opt(256, "Long side the image is looked at, px.", check=whole(1, MAX_SIDE), type=int)
    cell: int = opt(128, "Side of each channel's visualization, px (0: none, the maps only).", check=whole(0, MAX_SIDE))


@dataclass
class TextureSettings(ExecutorOptions, Settings):
    """Texture synthesis (Gatys et al. 2015): the style of STYLE from noise, no content image."""

    KIND: ClassVar[str] = "texture"
    INPUTS: ClassVar[tuple] = ("still", "grid")

    styles: tuple = opt((), "The style images (several blend).", check=image_list, argument="many")
    size: tuple = opt(
        (DEFAULT_SIZE, DEFAULT_SIZE),
        "Output size: N (a square) or WxH.",
        check=texture_size,
        type=str,
        default_text=str(DEFAULT_SIZE),
    )
    style_scale: float = opt(
        1.0, "Style image size relative to the output's long side.", check=number(0.0, 16.0, above=True)
    )
    style_blend: tuple | None = opt(None, "Weights of the style images: w1,w2,...", check=float_list, type=str)
    style_layers: dict | None = opt(
        None,
        "Comma list of layers (LAYER or LAYER=WEIGHT).",
        check=layer_weights,
        type=str,
        default_text="the backbone's",
    )
    style_weight: float = opt(
        STYLE_WEIGHT,
        "Weight of the style term (relative: each layer's Gram error over the style Gram's energy).",
        check=weight_value,
    )
    style_loss: str = like(TransferSettings, "style_loss")
    preset: str | None = like(TransferSettings, "preset")
    tv_weight: float = opt(
        TV_WEIGHT, "Total variation: W x mean |neighbour difference| (0-255); smooths speckle.", check=weight_value
    )
    init: str = opt("noise", "Start from noise or an image FILE.", check=text)
    scales: Any = opt(None, "Coarse-to-fine: a count N, or long sides like 256,512.", check=scales, type=str)
    seamless: bool = opt(
        False,
        "Tileable result: circular padding in the network, wrap-around TV and jitter.",
        check=flag_value,
        type="flag",
    )
    jitter: int = opt(0, "Random roll each step, px (with --seamless: 16 if not given).", check=whole(0, 4096))
    preserve_color: str | None = opt(
        None, "Not for textures (no content image).", check=choice(allow_none=True), cli=False
    )
    style_masks: tuple = opt(
        (),
        "Where a style goes on the texture: N=MASK (N: 1 for the first style image) or "
        "MASK for the next; a greyscale image or a PNG's alpha. Repeatable.",
        check=style_masks,
        flag="--style-mask",
        multiple=True,
        metavar="[N=]MASK",
        type=str,
    )
    tile: int | None = opt(None, TILE_HELP, check=tile_size, type=str, metavar="PX|auto", default_text="auto")
    tile_overlap: int | None = opt(
        None, TILE_OVERLAP_HELP, check=whole(0, 4096, allow_none=True), type=int, default_text="from the layers"
    )

    def check_together(self) -> None:
        if not self.styles:
            raise OptionError("give at least one style image")
        check_masks(self.style_masks, len(self.styles))
        if self.seamless and self.tile:
            raise OptionError(
                "--seamless and --tile do not go together (a tile's edge is not the texture's); pass --tile 0"
            )
        if self.style_blend is not None and len(self.style_blend) != len(self.styles):
            raise OptionError(f"--style-blend has {len(self.style_blend)} weights for {len(self.styles)} style images")


@dataclass
class ReconstructSettings(Settings):
    """What single layers keep of IMAGE: content per layer, or the style of growing sets of layers."""

    KIND: ClassVar[str] = "reconstruct"

    image: Any = opt(None, "The image to reconstruct.", check=image_input, argument="one")
    style: bool = opt(
        False,
        "Reconstruct the style (Gram loss on the first layer, the first two, ...) instead of the content.",
        check=flag_value,
        type="flag",
    )
    layers: dict | None = opt(
        None,
        "Comma list of layers (default: the backbone's style layers, a spread of depths).",
        check=layer_weights,
        type=str,
    )
    size: int | None = opt(256, "Long side of each panel, px.", check=whole(1, MAX_SIDE))
    iterations: int = opt(200, "Optimizer steps per panel.", check=whole(1, MAX_ITERATIONS))
    weight: float | None = opt(
        None,
        f"Loss weight (default: transfer's content weight {CONTENT_WEIGHT:g}, or style weight {STYLE_WEIGHT:g}).",
        check=number(0.0, above=True, allow_none=True),
        type=float,
    )
    tv_weight: float = opt(0.0, "Total-variation smoothing (0: none, as in the paper).", check=weight_value)
    columns: int | None = opt(
        None,
        "Panels per row (default: one row up to 6 panels).",
        check=whole(1, 100, allow_none=True),
        type=int,
        recipe=False,
    )
    preserve_color: str | None = opt(None, "Not for reconstructions.", check=choice(allow_none=True), cli=False)


def check_masks(masks: tuple, styles: int) -> None:
    if len(masks) > styles:
        raise OptionError(
            f"--style-mask names style image {len(masks)}, but there {'is' if styles == 1 else 'are'} {styles}"
        )


def describe_default(f: dataclasses.Field) -> str:
    spec = f.metadata["spec"]
    if spec.default_text is not None:
        return spec.default_text
    return (
        ""
        if f.default is None or f.default is False or f.default == ()
        else f"{f.default:g}"
        if isinstance(f.default, float)
        else str(f.default)
    )


@dataclass
class TrainSettings(TransferSettings):
    """Training a feed-forward style network (dreamstyle.fastnet) on PHOTOS, a folder, in the style of
    STYLES: a transfer whose picture is the network's output on random crops of the photos."""

    KIND: ClassVar[str] = "train"
    INPUTS: ClassVar[tuple] = ("train",)
    TRAIN = only("train")

    content: Any = opt(None, "The folder of photos to train on.", check=text, argument="one", metavar="PHOTOS")
    size: int | None = opt(
        256,
        "Side of the square random crops the network trains on, px.",
        check=whole(16, MAX_SIDE, allow_none=True),
        type=int,
    )
    iterations: int = opt(2000, "Training steps (a batch of photos each).", check=whole(1, MAX_ITERATIONS))
    optimizer: str = opt(
        "adam", "Optimizer (L-BFGS cannot train: each step has other photos).", check=registered("optimizer")
    )
    lr: float | None = opt(
        None,
        "Adam's learning rate for the network's weights.",
        check=number(0.0, above=True, allow_none=True),
        type=float,
        default_text="1e-3",
    )
    batch: int = opt(4, "Photos a step.", check=whole(1, 256), applies_to=TRAIN)
    width: int = opt(
        32,
        "Channels of the network's first layer (then times --growth at each downsampling): its size and speed.",
        check=whole(1, 512),
        applies_to=TRAIN,
    )
    blocks: int = opt(5, "Residual blocks of the network.", check=whole(0, 64), applies_to=TRAIN)
    upsample: str = opt(
        "nearest",
        "How the network upsamples (each then a convolution, no checkerboard): nearest or bilinear.",
        check=choice("nearest", "bilinear"),
        type=("nearest", "bilinear"),
        applies_to=TRAIN,
    )
    edge: int = opt(
        9,
        "Kernel of the network's first and last convolutions: 3, 5, 7 or 9.",
        check=whole(3, 9),
        type=int,
        applies_to=TRAIN,
    )
    growth: int = opt(
        1,
        "Channels times this at each of the network's two downsamplings: 1 (the same width throughout) or 2 "
        "(32-64-128, Johnson et al.: about 5x the time).",
        check=whole(1, 2),
        type=int,
        applies_to=TRAIN,
    )
    taper: int = opt(
        4,
        "The upsampling layers' channels divided by this (4: a light decoder, fast on big pictures; 1: the "
        "mirror of the downsampling side, as Johnson et al.).",
        check=whole(1, 16),
        type=int,
        applies_to=TRAIN,
    )
    checkpoint_every: int = opt(
        100,
        "Write the model file every N steps (0: at the end only).",
        check=whole(0, MAX_ITERATIONS),
        recipe=False,
        applies_to=TRAIN,
    )
    preview_every: int = opt(
        0,
        "Write OUT's preview (PNG: the crops over the network's pictures) every N steps.",
        check=whole(0, MAX_ITERATIONS),
        recipe=False,
        applies_to=TRAIN,
    )
    held_out: int = opt(
        0,
        "Photos (the last by name) set aside, never trained on; their loss is reported.",
        check=whole(0, 10**6),
        applies_to=TRAIN,
    )

    def check_together(self) -> None:
        super().check_together()
        if self.edge % 2 == 0:
            raise OptionError(f"--edge {self.edge}: choose an odd kernel, 3, 5, 7 or 9")
        if self.optimizer == "lbfgs":
            raise OptionError(
                "training draws new photos every step, and L-BFGS needs one objective over its "
                "steps: use --optimizer adam (the default)"
            )


def settings_for(kind: str):
    return {
        "transfer": TransferSettings,
        "dream": DreamSettings,
        "texture": TextureSettings,
        "reconstruct": ReconstructSettings,
        "channels": AtlasSettings,
        "atlas": AtlasSettings,
        "activations": ActivationsSettings,
        "train": TrainSettings,
    }[kind]


def apply_preset(cls, values: dict, given: Callable[[str], bool]) -> dict:
    """``values`` with the options of their ``preset`` (:data:`PRESETS`) in place of those not ``given``
    (an option given, even at its default, beats the preset); options ``cls`` lacks are left out
    (texture has no content weight)."""
    preset = PRESETS.get(values.get("preset") or "")
    if not preset:
        return values  # no preset (an unknown one: its check refuses it)
    names = cls.names()
    return {**values, **{k: v for k, v in preset.items() if k in names and not given(k)}}


def preset_values(settings) -> dict:
    """The options of ``settings``' preset that hold the preset's values (the recipe's
    ``preset_values``: what the preset set; an option given at the preset's very value counts too)."""
    preset = PRESETS.get(getattr(settings, "preset", None) or "", {})
    return {k: v for k, v in preset.items() if k in settings.names() and getattr(settings, k) == v}


def make(cls, values: dict) -> Settings:
    """``cls(**values)``, refusing unknown names in one line (the Python API's keyword arguments);
    a ``preset`` sets its options not given."""
    unknown = sorted(set(values) - cls.names())
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(cls.names()), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise OptionError(f"{cls.KIND} has no option {unknown[0]!r}{hint}")
    return cls(**apply_preset(cls, values, values.__contains__))
