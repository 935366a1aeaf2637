"""Many images: ``transfer_folder`` one image at a time vs batched, same process, same images.

    python -m benchmarks.folder --device cpu --size 256 --images 8 --batch 4 --iterations 20

Makes ``--images`` content images (crops of scikit-image's photos if installed, else synthetic),
runs the folder transfer with ``batch=1`` and with ``--batch``, and reports images per second for
both and their ratio. One loaded backbone serves both runs; a warm-up image runs first.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path


def make_images(folder: Path, n: int, size: int) -> None:
    from PIL import Image

    from benchmarks.transfer import images
    from dreamstyle.images import to_pil

    content, _ = images(size * 2)
    base = to_pil(content)
    w, h = base.size
    for i in range(n):  # shifted crops: same size, different pictures
        dx, dy = (i * 37) % max(1, w - size), (i * 23) % max(1, h - size)
        crop = base.crop((dx, dy, dx + min(size, w), dy + min(size, h)))
        crop.resize((size, size), Image.LANCZOS).save(folder / f"img{i:03d}.png")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--images", type=int, default=8)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--iterations", type=int, default=20)
    p.add_argument("--optimizer", choices=["adam", "lbfgs"], default="adam")
    p.add_argument("--weights", choices=["random", "default"], default="default")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    import torch

    from benchmarks.common import device_name, peak_memory, write_results
    from benchmarks.transfer import images
    from dreamstyle import transfer_folder
    from dreamstyle.backbones import load_backbone
    from dreamstyle.images import to_pil

    weights = None if args.weights == "default" else "random"
    loaded = load_backbone("vgg19", weights=weights, device=args.device)
    with tempfile.TemporaryDirectory() as tmp:
        folder, style_path = Path(tmp) / "in", Path(tmp) / "style.png"
        folder.mkdir()
        make_images(folder, args.images, args.size)
        to_pil(images(args.size)[1]).save(style_path)
        common = dict(
            size=args.size,
            iterations=args.iterations,
            optimizer=args.optimizer,
            loaded=loaded,
            device=args.device,
            seed=0,
        )
        warm = Path(tmp) / "warm"
        warm.mkdir()
        (warm / "w.png").write_bytes((folder / "img000.png").read_bytes())
        transfer_folder(warm, [str(style_path)], **{**common, "iterations": 2})
        rates = {}
        for batch in (1, args.batch):
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            t = time.perf_counter()
            transfer_folder(folder, [str(style_path)], batch=batch, **common)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            rates[batch] = args.images / (time.perf_counter() - t)
    record = {
        "benchmark": "folder",
        "device": args.device,
        "device_name": device_name(args.device),
        "size": args.size,
        "images": args.images,
        "iterations": args.iterations,
        "optimizer": args.optimizer,
        "weights": args.weights,
        "date": time.strftime("%Y-%m-%d"),
        "batch": args.batch,
        "images_per_s_batch1": round(rates[1], 4),
        "images_per_s_batched": round(rates[args.batch], 4),
        "speedup": round(rates[args.batch] / rates[1], 3),
        **peak_memory(args.device),
    }
    path = write_results("folder", record, args.json)
    print(
        f"device: {record['device_name']}  {args.images} images of {args.size} px, {args.iterations} "
        f"{args.optimizer} iterations each"
    )
    print(
        f"one at a time: {rates[1]:.3f} images/s   batch {args.batch}: {rates[args.batch]:.3f} images/s   "
        f"ratio {record['speedup']:.2f}x   -> {path}"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
