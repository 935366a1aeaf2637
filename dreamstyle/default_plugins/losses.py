"""The built-in loss terms, registered like any plugin's (torch is imported only when built)."""

from ..hookspecs import hookimpl
from ..settings import CONTENT_WEIGHT, STYLE_WEIGHT, TEMPORAL_WEIGHT, TV_WEIGHT
from ..termspec import TermSpec, backbone_layers, own_layers


def _content(layers=backbone_layers("content_layers", ("relu4_2",)), backbone=None):
    from ..terms import ContentLoss

    return ContentLoss(own_layers(layers, backbone))


def _style(
    layers=backbone_layers("style_layers", ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")), backbone=None
):
    from ..terms import StyleLoss

    return StyleLoss(own_layers(layers, backbone))


def _w2(layers=backbone_layers("style_layers", ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")), backbone=None):
    from ..distribution import GaussianW2Loss

    return GaussianW2Loss(own_layers(layers, backbone))


def _swd(
    layers=backbone_layers("style_layers", ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")),
    directions=256,
    backbone=None,
):
    from ..distribution import SlicedWassersteinLoss

    return SlicedWassersteinLoss(own_layers(layers, backbone), directions)


def _nn(
    layers=backbone_layers("style_layers", ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")),
    samples=4096,
    backbone=None,
):
    from ..distribution import NearestNeighbourLoss

    return NearestNeighbourLoss(own_layers(layers, backbone), samples)


def _tv(wrap=False):
    from ..terms import TVLoss

    return TVLoss(wrap)


def _temporal(threshold=0.1):
    from ..terms import TemporalLoss

    return TemporalLoss(threshold)


def _activation(layers=backbone_layers("dream_layers", "relu4_4"), objective="mean", backbone=None):
    from ..activation import ActivationLoss

    return ActivationLoss(own_layers(layers, backbone), objective)


def _guide(layers=backbone_layers("dream_layers", "relu4_4"), backbone=None):
    from ..activation import GuideLoss

    return GuideLoss(own_layers(layers, backbone))


def _diversity(layers=backbone_layers("dream_layers", "relu4_4"), backbone=None):
    from ..activation import DiversityLoss

    return DiversityLoss(own_layers(layers, backbone))


@hookimpl
def register_loss_terms(register):
    register(
        TermSpec(
            "content",
            "feature MSE against the content image, over its energy per layer (--content-layers)",
            _content,
            CONTENT_WEIGHT,
        )
    )
    register(
        TermSpec(
            "style",
            "Gram-matrix MSE against the style images over the style Gram's energy, fp32 (--style-layers)",
            _style,
            STYLE_WEIGHT,
        )
    )
    register(
        TermSpec(
            "w2",
            "Wasserstein-2 distance between Gaussian fits of the features and the style's, "
            "relative to the style's (transfer --style-loss w2)",
            _w2,
            STYLE_WEIGHT,
        )
    )
    register(
        TermSpec(
            "swd",
            "sliced Wasserstein distance of the features to the style's, directions drawn each "
            "step, relative to the style's (transfer --style-loss swd; no tiles)",
            _swd,
            STYLE_WEIGHT,
        )
    )
    register(
        TermSpec(
            "nn",
            "cosine distance of each position's features to its nearest style feature, as NNST "
            "(transfer --style-loss nn; no tiles)",
            _nn,
            STYLE_WEIGHT,
        )
    )
    register(
        TermSpec(
            "tv", "total variation: mean |difference| of neighbouring pixels (0-255), smooths speckle", _tv, TV_WEIGHT
        )
    )
    register(
        TermSpec(
            "temporal",
            "clips: change against the previous output frame where the content did not "
            "change (transfer --temporal-weight)",
            _temporal,
            TEMPORAL_WEIGHT,
        )
    )
    register(
        TermSpec(
            "activation",
            "minus the mean (or l2) activation of layers, channels or neurons: "
            "DeepDream (dreamstyle dream --layer, transfer --dream-layer)",
            _activation,
            1.0,
        )
    )
    register(
        TermSpec(
            "guide",
            "minus each position's best dot product with a guide image's features (dreamstyle dream --guide)",
            _guide,
            1.0,
        )
    )
    register(
        TermSpec(
            "diversity",
            "mean Gram-matrix cosine similarity between the pictures of a batch: pushes "
            "them apart (dreamstyle dream --samples N --loss diversity=W)",
            _diversity,
            1.0,
        )
    )
