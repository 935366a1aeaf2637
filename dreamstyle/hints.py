"""Hints: one line each where a setting is unlikely to show anything at the steps given.

Every rule is here, a function ``(kind, settings, optimizer) -> str | None`` in :data:`RULES`
(``optimizer``: the one the job resolved, where a command has a job; else None); :func:`hints`
runs them all. The CLI prints each line, as ``dreamstyle: hint: ...``, once the run's checks are
done; a hint never stops a run. Each rule has a test (tests/test_progress.py).
"""

from __future__ import annotations

from .settings import AtlasSettings

ADAM_FEW = 100  # transfer: fewer Adam steps than this at its default rate barely move the picture
VISUALIZE_SHARE = 4  # a visualization from noise with under 1/4 of its default steps stays grey


def adam_at_default_rate(kind: str, s, optimizer: str | None) -> str | None:
    """Adam at its default learning rate moves each pixel a few units per step: in a few dozen steps a
    transfer still looks like the photo (L-BFGS styles it in about ten)."""
    if kind != "transfer" or optimizer != "adam" or s.lr is not None or s.iterations >= ADAM_FEW:
        return None
    return (
        f"Adam at its default rate changes the picture little in {s.iterations} steps: --optimizer lbfgs "
        f"(the default) styles it in fewer, or give Adam --iterations {ADAM_FEW * 3} or more"
    )


def visualization_steps() -> int:
    """The steps a visualization from noise takes by default (channels, activations)."""
    return AtlasSettings.__dataclass_fields__["iterations"].default


def short_visualization(kind: str, s, optimizer: str | None) -> str | None:
    """A feature visualization (from noise) given far fewer steps than its default stays grey."""
    default = visualization_steps()
    if kind in ("channels", "atlas", "activations"):
        if kind == "activations" and not s.cell:
            return None
        steps, flag = s.iterations, f"--iterations {default}"
    elif kind == "dream" and s.init == "noise":
        steps = s.iterations * s.octaves
        flag = (
            f"--iterations {default} --octaves 1"
            if s.octaves == 1
            else f"--iterations {-(-default // s.octaves)} (per octave)"
        )
    else:
        return None
    if steps * VISUALIZE_SHARE >= default:
        return None
    return (
        f"a visualization from noise mostly stays grey in {steps} steps (channels and activations take "
        f"{default} by default); give {flag}"
    )


RULES = (adam_at_default_rate, short_visualization)


def hints(kind: str, settings, job=None) -> list[str]:
    """The hints for a run of ``kind`` with ``settings`` (``job``: its job, where built)."""
    optimizer = getattr(job, "optimizer", None) if job is not None else getattr(settings, "optimizer", None)
    return [line for rule in RULES if (line := rule(kind, settings, optimizer))]
