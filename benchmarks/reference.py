"""A naive style transfer written the way the common tutorials write it: the whole VGG19 feature
stack in fp32 with forward hooks capturing every tapped layer, a fresh Gram matrix and an
``.item()`` (a host sync) every step. It is the baseline the benchmarks compare against."""

from __future__ import annotations

import torch
from torch import nn


class Hooked(nn.Module):
    def __init__(self, features: nn.Sequential, taps: dict[str, int]):
        super().__init__()
        self.features = features  # the whole stack, through pool5
        self.taps = taps
        self.captured: dict[str, torch.Tensor] = {}
        for name, index in taps.items():
            features[index].register_forward_hook(self._hook(name))

    def _hook(self, name):
        def hook(module, inputs, output):
            self.captured[name] = output

        return hook

    def forward(self, x):
        self.captured = {}
        self.features(x)
        return dict(self.captured)


def gram(x):
    b, c, h, w = x.shape
    f = x.view(c, h * w)
    return torch.mm(f, f.t()) / (c * h * w)


def run(
    features: nn.Sequential,
    preprocess,
    content,
    style,
    content_layers: dict[str, int],
    style_layers: dict[str, int],
    iterations: int,
    optimizer: str,
    on_step=None,
    content_weight=5.0,
    style_weight=100.0,
    tv_weight=1e-3,
):
    """``content``/``style``: (1, 3, H, W) in [0, 1]. ``preprocess``: [0, 1] RGB -> network input."""
    net = Hooked(features, {**content_layers, **style_layers})
    with torch.no_grad():
        content_targets = {k: v.detach() for k, v in net(preprocess(content)).items() if k in content_layers}
        style_targets = {k: gram(v).detach() for k, v in net(preprocess(style)).items() if k in style_layers}
    image = (content.clone() * 255).requires_grad_(True)
    opt = (
        torch.optim.LBFGS([image], lr=1, max_iter=1, history_size=100)
        if optimizer == "lbfgs"
        else torch.optim.Adam([image], lr=5.0)
    )
    losses = []

    def closure():
        opt.zero_grad()
        x = image / 255
        feats = net(preprocess(x))
        c_loss = sum(nn.functional.mse_loss(feats[k], t) for k, t in content_targets.items())
        s_loss = sum(nn.functional.mse_loss(gram(feats[k]), t) for k, t in style_targets.items())
        tv = ((x[..., :, 1:] - x[..., :, :-1]).abs().sum() + (x[..., 1:, :] - x[..., :-1, :]).abs().sum()) * 255
        loss = content_weight * c_loss + style_weight * s_loss + tv_weight * tv
        loss.backward()
        losses.append(loss.item())  # the per-step host sync tutorials do for logging
        return loss

    for i in range(iterations):
        opt.step(closure)
        if on_step is not None:
            on_step(i + 1)
    return image.detach() / 255, losses
