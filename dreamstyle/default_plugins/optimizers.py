"""The built-in optimizers, registered like any plugin's (torch is imported only when one is built)."""

from ..hookspecs import hookimpl
from ..records import OptimizerSpec


def _lbfgs(params, lr, pixel_scale):
    from ..optimizers import lbfgs

    return lbfgs(params, lr, pixel_scale)


def _adam(params, lr, pixel_scale):
    from ..optimizers import adam

    return adam(params, lr, pixel_scale)


def _normalized(params, lr, pixel_scale):
    from ..optimizers import normalized

    return normalized(params, lr, pixel_scale)


@hookimpl
def register_optimizers(register):
    register(
        OptimizerSpec(
            "lbfgs",
            "L-BFGS (torch's) with a first step that moves pixels; transfer's default",
            _lbfgs,
            1.0,
            clamp=False,
            alternative="adam",
        )
    )
    register(OptimizerSpec("adam", "Adam, learning rate in 0-255 pixel units", _adam, 5.0, alternative="lbfgs"))
    register(
        OptimizerSpec(
            "normalized",
            "DeepDream's step: the gradient over its mean |value| times the step; dream's default",
            _normalized,
            1.5,
            alternative="adam",
        )
    )
