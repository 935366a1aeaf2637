"""Replay: the settings stored in an output's recipe, with any options given on top
(``dreamstyle transfer --from OUT.png [overrides]``). With the same seed, device and versions the
image comes out the same, bit for bit on the CPU."""

from __future__ import annotations

from pathlib import Path

from .errors import OptionError
from .settings import INPUT_FIELDS, file_hash
from .writers import read_recipe


def recipe_values(path: str | Path, cls, explicit: dict) -> dict:
    """``cls``'s settings values from the recipe in ``path``, ``explicit`` ones on top."""
    path = Path(path)
    if not path.is_file():
        raise OptionError(f"--from {path}: no such file")
    try:
        recipe = read_recipe(path)
    except Exception as exc:  # noqa: BLE001 - not an image we can read
        raise OptionError(f"--from {path}: cannot read it ({type(exc).__name__})") from None
    if not recipe:
        raise OptionError(f"--from {path}: it carries no dreamstyle recipe")
    if recipe.get("command") != cls.KIND:
        raise OptionError(f"--from {path}: its recipe is of 'dreamstyle {recipe.get('command')}', "
                          f"not 'dreamstyle {cls.KIND}'")
    known = {f.name for f in cls.fields() if f.metadata["spec"].recipe}
    values = {k: _tuples(v) for k, v in recipe.items() if k in known}
    for key in [k for k, v in values.items() if v == "<image>"]:
        if key not in explicit:
            raise OptionError(f"--from {path}: the recipe's {key} was an image in memory, not a file; give it")
    hashes = recipe.get("inputs") or {}
    for key in INPUT_FIELDS & set(values) - set(explicit):
        value = values[key]
        found = tuple(_find(v, path, hashes, key) for v in value) if isinstance(value, tuple) else \
            _find(value, path, hashes, key)
        values[key] = found
    values.update(explicit)
    return values


def _find(name, recipe_path: Path, hashes: dict, key: str):
    """An input the recipe names: as given, else beside the replayed file; checked by its hash."""
    if not isinstance(name, str) or name in ("", "content", "noise", "style", "image", "default", "random"):
        return name
    for candidate in (Path(name), recipe_path.parent / Path(name).name):
        if candidate.is_file():
            want = hashes.get(Path(name).name)
            if want and file_hash(candidate) != want:
                raise OptionError(f"--from {recipe_path}: {candidate} is not the {key} file the recipe was made "
                                  f"from (its SHA-256 differs); give the {key} to use")
            return str(candidate)
    if key in ("weights",) and not hashes.get(Path(name).name):
        return name
    raise OptionError(f"--from {recipe_path}: the recipe's {key} is {name!r}, which is neither here nor beside "
                      f"{recipe_path.name}; give it (or put it there)")


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
    out["weights"] = "default" if settings.weights is None else str(settings.weights)  # as the session records
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
