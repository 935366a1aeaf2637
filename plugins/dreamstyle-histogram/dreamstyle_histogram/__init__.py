"""dreamstyle-histogram: a histogram loss term for dreamstyle (Risser, Wilmot and Barnes 2017,
"Stable and Controllable Neural Texture Synthesis and Style Transfer Using Histogram Losses").

This module only registers the term; the torch code is in :mod:`dreamstyle_histogram.term`,
imported when the term is built, so listing plugins stays fast.
"""

from __future__ import annotations

from dreamstyle import hookimpl
from dreamstyle.termspec import TermSpec

__version__ = "0.1.0"

NAME = "histogram"
DEFAULT_LAYERS = ("relu1_1", "relu4_1")  # Risser et al.'s choice, on the default backbone vgg19
DEFAULT_BINS = 256
# Measured on vgg19 (default weights) with photographs, from the content image: at this weight the
# term's gradient is 1/3 to 1/8 of the built-in style term's at its default weight (100 under dreamstyle
# 0.1; 0.2's relative style term at its 1.5e7 pulls about as hard on vgg19), so it corrects the Gram term's
# colour and contrast drift without taking over. This term is absolute (not divided by its targets' energy):
# on another backbone its weight needs retuning.
DEFAULT_WEIGHT = 100.0


def build(layers=DEFAULT_LAYERS, bins=DEFAULT_BINS):
    """The term. ``layers``: names from the backbone's layer map, a list or a string with optional
    per-layer weights ("relu1_1,relu4_1=0.5"); ``bins``: quantiles kept per channel as the target."""
    from .term import HistogramLoss

    return HistogramLoss(layers, bins)


@hookimpl
def register_loss_terms(register):
    register(
        TermSpec(
            NAME, "per-channel feature histograms matched to the style images' (Risser et al.)", build, DEFAULT_WEIGHT
        )
    )
