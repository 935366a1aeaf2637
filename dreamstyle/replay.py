"""Replay: the settings stored in an output's recipe, with any options given on top
(``dreamstyle transfer --from OUT.png [overrides]``). With the same seed, device and versions the
image comes out the same, bit for bit on the CPU."""

from __future__ import annotations

import os
from pathlib import Path

from .backbones.own import file_of, is_own
from .errors import OptionError, RecipeError
from .settings import INPUT_FIELDS, checked, file_hash, plain, short_repr
from .writers import read_recipe

KEYWORDS = ("", "content", "noise", "style", "image", "default", "pretrained", "random")  # inputs that are no file


def recipe_values(path: str | Path, cls, explicit: dict) -> dict:
    """``cls``'s settings values from the recipe in ``path``, ``explicit`` ones on top (an explicit
    ``preset`` other than the recipe's also drops what the recipe's preset set). The recipe's
    input files are looked for beside ``path`` only, by their file names (a recipe from elsewhere
    never makes a replay read another folder), and checked by their hashes."""
    path = Path(path)
    recipe = _read(path)
    if recipe.get("command") != cls.KIND:
        raise OptionError(
            f"--from {path}: its recipe is of 'dreamstyle {recipe.get('command')}', not 'dreamstyle {cls.KIND}'"
        )
    try:
        values, hashes = recipe_settings(recipe, cls, skip=explicit)
    except RecipeError as exc:
        raise OptionError(f"--from {path}: a damaged recipe ({exc})") from None
    for key in INPUT_FIELDS & set(values):
        if "<image>" in (values[key] if isinstance(values[key], tuple) else (values[key],)):
            raise OptionError(f"--from {path}: the recipe's {key} was an image in memory, not a file; give it")
        value = values[key]
        values[key] = (
            tuple(_find(v, path, hashes, key) for v in value)
            if isinstance(value, tuple)
            else _find(value, path, hashes, key)
        )
    if file_of(values.get("backbone")):
        values["backbone"] = _find_network(values["backbone"], path, hashes)
    elif is_own(values.get("backbone")):  # MODULE:CALLABLE: code a recipe from anyone must not run by itself
        raise OptionError(
            f"--from {path}: the recipe's backbone is {values['backbone']}, code in a Python module; give "
            f"--backbone {values['backbone']} (and --weights FILE) to run it"
        )
    if explicit.get("preset") and explicit["preset"] != recipe.get("preset"):
        set_by_preset = recipe.get("preset_values")  # another preset: the old one's values go, the new one's come
        for key in set_by_preset if isinstance(set_by_preset, dict) else ():
            values.pop(key, None)
    values.update(explicit)
    return values


def _read(path: Path) -> dict:
    if not path.is_file():
        raise OptionError(f"--from {path}: no such file")
    try:
        recipe = read_recipe(path)
    except RecipeError as exc:
        raise OptionError(f"--from {path}: a damaged recipe ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - not an image we can read
        raise OptionError(f"--from {path}: cannot read it ({type(exc).__name__})") from None
    if not recipe:
        raise OptionError(f"--from {path}: it carries no dreamstyle recipe")
    return recipe


def recipe_settings(recipe: dict, cls, skip=()) -> tuple[dict, dict]:
    """The values a recipe records for ``cls``'s settings (but ``skip``), each checked as its option
    checks it, and its input hashes ({file name: SHA-256}); a value of the wrong kind raises
    :class:`~dreamstyle.errors.RecipeError` naming it."""
    hashes = recipe.get("inputs") or {}
    if not isinstance(hashes, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in hashes.items()):
        raise RecipeError(f"its inputs are {short_repr(hashes)}, not file names with their SHA-256")
    values = {}
    for f in cls.fields():
        if not f.metadata["spec"].recipe or f.name not in recipe or f.name in skip:
            continue
        value = _tuples(recipe[f.name])
        names = value if isinstance(value, tuple) else (value,)
        if f.name in INPUT_FIELDS and not all(v is None or isinstance(v, str) for v in names):
            raise RecipeError(f"its {f.name} is {short_repr(recipe[f.name])}, not a file name")
        try:
            checked(f, value)
        except OptionError as exc:
            raise RecipeError(f"its {f.name}: {exc}") from None
        values[f.name] = value
    if "term_scale" in cls.names() and "term_scale" not in recipe and "term_scale" not in skip:
        values["term_scale"] = "absolute"  # made before 0.2.0: the plain squared errors, as it ran
    return values, hashes


def _find(name, recipe_path: Path, hashes: dict, key: str):
    """An input the recipe names, beside the replayed file under its file name (whatever folder the
    recipe says), checked by its hash; a link out of that folder is taken only with a hash to check."""
    if not isinstance(name, str) or name in KEYWORDS:
        return name
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    candidate = recipe_path.parent / base
    if base in ("", ".", "..") or not candidate.is_file():
        raise OptionError(
            f"--from {recipe_path}: the recipe's {key} is {base or name!r}, which is not beside "
            f"{recipe_path.name} (a replay reads its inputs there, or from the command line); give "
            f"it (or put it there)"
        )
    want = hashes.get(base)
    if want and file_hash(candidate) != want:
        raise OptionError(
            f"--from {recipe_path}: {candidate} is not the {key} file the recipe was made "
            f"from (its SHA-256 differs); give the {key} to use"
        )
    if not want and os.path.realpath(candidate.parent) != os.path.dirname(os.path.realpath(candidate)):
        raise OptionError(
            f"--from {recipe_path}: {candidate} links out of its folder and the recipe has no hash "
            f"to check it by; give the {key} to use"
        )
    return str(candidate)


def _find_network(name: str, recipe_path: Path, hashes: dict) -> str:
    """Your own network's file, which the recipe records by its SHA-256: where the recipe says (a path
    as given, from the folder the replay runs in), else beside the replayed file under its name. A
    file there that is not the one the recipe was made with is one line (a network file is found by
    its hash only: without one in the recipe, only the file beside is taken)."""
    path = Path(file_of(name))
    want = hashes.get(path.name)
    beside = recipe_path.parent / path.name
    for candidate in ([path] if want else []) + [beside]:
        if candidate.is_file():
            if want and file_hash(candidate) != want:
                raise OptionError(
                    f"--from {recipe_path}: the network file {candidate} changed since the recipe was made (its "
                    f"SHA-256 differs); give --backbone FILE to use it as it is now"
                )
            return str(candidate)
    raise OptionError(
        f"--from {recipe_path}: the recipe's network file {path.name} is neither at {path} nor beside "
        f"{recipe_path.name}; give --backbone FILE"
    )


def _tuples(value):
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    return value


def expected_recipe(settings, paths: str = "full") -> tuple[dict, tuple]:
    """What the recipe of an output these settings make will say of them (``--resume`` compares it
    with a file's), and the keys not to compare (the seed, where none was given: it was drawn)."""
    out = settings.to_recipe(paths)
    weights = "default" if settings.weights is None else str(settings.weights)
    out["weights"] = plain(weights, paths, files=True)  # as the session records
    out["stopped"] = None  # only a finished output counts as done
    return out, () if settings.seed is not None else ("seed",)


def made_with(path: str | Path, expected: dict, ignore=()) -> bool | None:
    """Whether the output ``path`` carries a recipe that agrees with ``expected`` on every key (but
    ``ignore``): None if there is no such file."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        recipe = read_recipe(path)
    except Exception:  # noqa: BLE001 - a damaged file is not a finished output
        return False
    return bool(recipe) and all(recipe.get(k) == v for k, v in expected.items() if k not in ignore)
