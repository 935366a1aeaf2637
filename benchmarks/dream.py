"""DeepDream: dreamstyle's dream step vs a bare forward+backward of the same truncated network,
and vs a naive reference (the whole feature stack with a forward hook, ``.item()`` every step).

    python -m benchmarks.dream --device cpu --size 256 --iterations 20 --layer relu4_4

All three run in one process, one after the other, on the same image, layer and device.
``overhead`` = ours / bare - 1 (the target is <= 15%); ``speedup`` = reference / ours.
"""

from __future__ import annotations

import argparse
import sys
import time


def timed(fn, iterations: int, device: str) -> float:
    """Median-free simple timing: ms per call over ``iterations`` calls after one warm-up."""
    import torch

    fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(iterations):
        fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / iterations * 1000


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--iterations", type=int, default=20)
    p.add_argument("--layer", default="relu4_4")
    p.add_argument("--weights", choices=["random", "default"], default="default")
    p.add_argument("--precision", default="auto", help="ours and the bare pass (the reference is fp32)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    import torch

    import dreamstyle
    from benchmarks.common import device_name, peak_memory, write_results
    from benchmarks.transfer import images
    from dreamstyle.backbones import load_backbone
    from dreamstyle.images import to_pil
    from dreamstyle.runtime import amp_dtype, autocast, precision_name

    weights = None if args.weights == "default" else "random"
    content, _ = images(args.size)
    loaded = load_backbone("vgg19", weights=weights, device=args.device)
    x = content.to(args.device)

    # bare: forward to the layer and backward, nothing else
    net = loaded.features([args.layer])
    img = x.clone().requires_grad_(True)

    dtype = amp_dtype(torch.device(args.device), args.precision)

    def bare():
        img.grad = None
        with autocast(torch.device(args.device), dtype):
            feats = net(img)
        feats[args.layer].float().mean().backward()

    bare_ms = timed(bare, args.iterations, args.device)

    # reference: the whole stack, a hook, a sync per step
    features, pre = loaded.model.features, loaded.preprocess.module().to(args.device)
    index = int(loaded.backbone.layer_map[args.layer].module.rsplit(".", 1)[1])
    captured = {}
    handle = features[index].register_forward_hook(lambda m, i, o: captured.__setitem__("a", o))
    ref_img = (x.clone() * 255).requires_grad_(True)

    def reference():
        ref_img.grad = None
        features(pre(ref_img / 255))
        loss = -captured["a"].mean()
        loss.backward()
        loss.item()
        with torch.no_grad():
            ref_img.sub_(1.5 * ref_img.grad / (ref_img.grad.abs().mean() + 1e-8))

    ref_ms = timed(reference, args.iterations, args.device)
    handle.remove()

    # ours: one octave, no tiling, jitter on, timed from the engine's step events
    stamps = []

    def on_step(event):
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())

    dreamstyle.dream(
        to_pil(content),
        [args.layer],
        loaded=loaded,
        device=args.device,
        size=args.size,
        octaves=1,
        iterations=args.iterations + 1,
        tile=0,
        seed=0,
        callback=on_step,
        log_every=args.iterations + 1,
        precision=args.precision,
    )
    ours_ms = (stamps[-1] - stamps[0]) / (len(stamps) - 1) * 1000
    record = {
        "benchmark": "dream",
        "device": args.device,
        "device_name": device_name(args.device),
        "size": args.size,
        "iterations": args.iterations,
        "layer": args.layer,
        "weights": args.weights,
        "precision": precision_name(dtype),
        "date": time.strftime("%Y-%m-%d"),
        "bare_ms": round(bare_ms, 2),
        "ours_ms": round(ours_ms, 2),
        "reference_ms": round(ref_ms, 2),
        "overhead": round(ours_ms / bare_ms - 1, 3),
        "speedup": round(ref_ms / ours_ms, 3),
        **peak_memory(args.device),
    }
    path = write_results("dream", record, args.json)
    print(f"device: {record['device_name']}  size {args.size}  layer {args.layer}  {record['precision']}")
    print(f"bare fwd+bwd {bare_ms:.1f} ms   dreamstyle {ours_ms:.1f} ms/step   reference {ref_ms:.1f} ms/step")
    print(
        f"overhead over bare: {record['overhead'] * 100:+.1f}%   speedup vs reference: {record['speedup']:.2f}x"
        f"   -> {path}"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
