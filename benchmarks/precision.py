"""Feature precision and memory format on this device: a bare VGG19 forward+backward to relu5_1
(the layers a transfer uses) in fp32 and bf16 autocast, contiguous and channels-last, one process.

    python -m benchmarks.precision --device cpu --sizes 256,384

It is how ``--precision auto`` and the memory format were chosen (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import sys
import time

LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--sizes", default="256,384", help="long sides, px (3:2 images)")
    p.add_argument("--passes", type=int, default=8)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    import torch

    from benchmarks.common import device_name, write_results
    from dreamstyle.backbones import load_backbone
    from dreamstyle.runtime import cpu_runs_bf16

    dev = torch.device(args.device)
    net = load_backbone("vgg19", weights="random", device=dev).features(LAYERS)
    rows = []
    for long_side in (int(s) for s in args.sizes.split(",")):
        shape = (1, 3, round(long_side * 2 / 3), long_side)
        for dtype in (None, torch.bfloat16):
            for channels_last in (False, True):
                n = net.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
                x = torch.rand(shape, device=dev, requires_grad=True)

                def step():
                    xi = x.contiguous(memory_format=torch.channels_last) if channels_last else x
                    with torch.autocast(dev.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                        feats = n(xi)
                    sum(f.float().pow(2).mean() for f in feats.values()).backward()

                for _ in range(2):
                    step()
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                t = time.perf_counter()
                for _ in range(args.passes):
                    step()
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                ms = (time.perf_counter() - t) / args.passes * 1000
                rows.append(
                    {
                        "size": [shape[3], shape[2]],
                        "precision": "bf16" if dtype else "fp32",
                        "channels_last": channels_last,
                        "ms": round(ms, 1),
                    }
                )
                print(
                    f"{shape[3]}x{shape[2]}  {rows[-1]['precision']}  "
                    f"{'channels-last' if channels_last else 'contiguous   '}  {ms:7.1f} ms",
                    flush=True,
                )
    record = {
        "benchmark": "precision",
        "device": args.device,
        "device_name": device_name(args.device),
        "cpu_runs_bf16": cpu_runs_bf16() if dev.type == "cpu" else None,
        "date": time.strftime("%Y-%m-%d"),
        "rows": rows,
    }
    print("->", write_results("precision", record, args.json))


if __name__ == "__main__":
    main(sys.argv[1:])
