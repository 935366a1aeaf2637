"""A small network of your own, trained here on the CPU on a synthetic task and saved as a
torch.export file, for ``dreamstyle channels samples/own_net.pt2 stage1`` (samples/README.md).

The task: which of eight orientations the stripes of a 32 px picture have (each picture a random
pair of colours, frequency and phase, with noise). Nothing is downloaded; with the seed the same
network comes out on the same machine.

    python samples/own_network.py samples/own_net.pt2 [--steps 500]
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from torch import nn

CLASSES = 8
SIDE = 32


def pictures(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` striped pictures (n, 3, SIDE, SIDE) in [0, 1] and their orientation classes."""
    labels = torch.randint(0, CLASSES, (n,), generator=generator)
    angle = labels.float() * math.pi / CLASSES
    freq = 0.15 + 0.35 * torch.rand(n, generator=generator)
    phase = 2 * math.pi * torch.rand(n, generator=generator)
    y, x = torch.meshgrid(torch.arange(SIDE).float(), torch.arange(SIDE).float(), indexing="ij")
    along = x[None] * torch.cos(angle)[:, None, None] + y[None] * torch.sin(angle)[:, None, None]
    wave = 0.5 + 0.5 * torch.sin(freq[:, None, None] * along + phase[:, None, None])
    a, b = torch.rand(n, 3, 1, 1, generator=generator), torch.rand(n, 3, 1, 1, generator=generator)
    image = a + (b - a) * wave[:, None]
    image = image + 0.05 * torch.randn(image.shape, generator=generator)
    return image.clamp(0, 1), labels


def conv(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride, 1), nn.BatchNorm2d(cout), nn.ReLU()]


class OrientationNet(nn.Module):
    """A stem and two stages (each halving the size) of convolutions, batch norm and ReLUs; a linear
    head on the strongest response of each channel of the last."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(*conv(3, 16))
        self.stage1 = nn.Sequential(*conv(16, 32, 2), *conv(32, 32))
        self.stage2 = nn.Sequential(*conv(32, 48, 2), *conv(48, 48))
        self.head = nn.Linear(48, CLASSES)

    def forward(self, x):
        return self.head(self.stage2(self.stage1(self.stem(x))).amax((2, 3)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output")
    parser.add_argument("--steps", type=int, default=500, help="Adam steps, 32 pictures each")
    args = parser.parse_args()
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    model = OrientationNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    start = time.monotonic()
    for step in range(1, args.steps + 1):
        images, labels = pictures(32, generator)
        loss = nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 100 == 0:
            print(f"step {step}: loss {loss.item():.3f}", flush=True)
    model.eval()
    with torch.no_grad():
        images, labels = pictures(1000, torch.Generator().manual_seed(1))
        accuracy = (model(images).argmax(1) == labels).float().mean().item()
    example = torch.rand(1, 3, SIDE, SIDE)
    torch.export.save(torch.export.export(model, (example,)), args.output)
    print(
        f"wrote {args.output}: {args.steps} steps in {time.monotonic() - start:.0f} s, accuracy {accuracy:.1%} on 1000 new pictures"
    )


if __name__ == "__main__":
    main()
