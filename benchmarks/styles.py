"""Style losses side by side, graded by a judge that is not the network they optimize (issue 31).

Each method (``--style-loss`` with an optimizer) runs on each photo x painting pair at the same size
and iterations, on vgg19 with its default weights, in one process; every picture is then scored by
``dreamstyle.score`` on the judge: EfficientNet-Lite0 with real ImageNet weights (the offline asset
``efficientnet-lite0-57934424.pth``, renamed to timm's layout as in ``benchmarks.scale``) where it is
found, else vgg19 itself (then the judge grades its own features: said in the output). Reported per
method: wall time, and the mean content distance and style distances (Gram, sliced Wasserstein)
over the pairs, and each pair's; one contact sheet per method (the pairs in a row) under ``--sheets``.
A method is ``LOSS:OPTIMIZER[:STYLE_WEIGHT[:ITERATIONS]]``: the methods cost different times per
step, so equal wall time is each method's own number of steps (``--iterations`` where none is given).

    python -m benchmarks.styles --size 256 --iterations 100 --pairs 3 --sheets out/styles
    python -m benchmarks.styles --pairs 3 --threads 1 --methods gram:lbfgs:1.5e7,swd:lbfgs:1.5e8:40

``--grid`` runs the 5 photos x 5 paintings of ``../shared/assets/images`` instead (skipped where they are
absent), one sheet per method with a row per photo. With ``--keep DIR`` every picture and its scores are
kept there and a pair already kept is not made again, so a run can be resumed, or split between
processes with ``--shard K/N`` (each makes every N-th pair from the K-th; one thread each) and then
collected by the same command without ``--shard``, which makes nothing and writes the table and sheets.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
METHODS = ("gram:lbfgs", "w2:lbfgs", "swd:lbfgs", "swd:adam")
PAIRS = (
    ("chelsea.png", "starry_night.jpg"),
    ("astronaut.png", "great_wave.jpg"),
    ("rocket.png", "composition_vii.jpg"),
    ("chelsea.png", "great_wave.jpg"),
    ("astronaut.png", "starry_night.jpg"),
)


SCORES = ("content", "style_gram", "style_swd")
ASSET_IMAGES = ROOT.parent / "shared" / "assets" / "images"


def grid_pairs() -> list[tuple[Path, Path]]:
    """Every photo x every painting of the shared assets (photo-major), or [] where they are absent."""
    photos = sorted((ASSET_IMAGES / "content").glob("*.*"))
    paintings = sorted((ASSET_IMAGES / "style").glob("*.*"))
    return [(c, s) for c in photos for s in paintings]


def shard(spec: str | None, count: int) -> set[int]:
    """The indices of ``count`` pairs that shard ``spec`` ("K/N", or None for all) makes."""
    if not spec:
        return set(range(count))
    try:
        k, n = (int(x) for x in spec.split("/"))
    except ValueError:
        raise ValueError(f"--shard {spec}: give K/N, like 0/2") from None
    if not 0 <= k < n:
        raise ValueError(f"--shard {spec}: K must be 0 to N-1")
    return set(range(k, count, n))


def make_pair(content: Path, style: Path, loss, optimizer, iterations, extra, size, judge, weights):
    """One picture of ``content`` in ``style`` and its judge's scores, with the seconds it took to make."""
    import dreamstyle

    t = time.perf_counter()
    result = dreamstyle.transfer(
        str(content),
        [str(style)],
        size=size,
        iterations=iterations,
        style_loss=loss,
        optimizer=optimizer,
        seed=1,
        device="cpu",
        **extra,
    )
    seconds = time.perf_counter() - t
    scores = dreamstyle.score(result.image, str(content), [str(style)], backbone=judge, weights=weights, device="cpu")
    return result.image, {key: scores[key] for key in SCORES} | {"seconds": seconds}


def keep_pair(folder: Path, stem: str, image, scores: dict) -> None:
    """The picture, then its scores, each written atomically: a pair counts as kept once its JSON is there."""
    from dreamstyle.outbox import publish, write_json

    folder.mkdir(parents=True, exist_ok=True)
    publish(folder / f"{stem}.png", lambda fh: image.save(fh, format="PNG"))
    write_json(folder / f"{stem}.json", scores)


def judge_backbone(tmp: Path) -> tuple[str, str | None, str]:
    """(backbone, weights, what) of the judge: EfficientNet-Lite0 where its asset is here, else vgg19."""
    from benchmarks.scale import find_asset, timm_keys

    asset = find_asset(None)
    try:
        import timm  # noqa: F401
    except ImportError:
        asset = None
    if asset is None:
        return "vgg19", None, "vgg19 (no EfficientNet-Lite0 asset here: the judge is the optimized network)"
    import torch

    path = tmp / "tf_efficientnet_lite0.pth"
    torch.save(timm_keys(torch.load(asset, map_location="cpu", weights_only=True)), path)
    return "timm/tf_efficientnet_lite0", str(path), "EfficientNet-Lite0, ImageNet weights"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--iterations", type=int, default=100)
    ap.add_argument("--pairs", type=int, default=3, help=f"how many of the {len(PAIRS)} pairs")
    ap.add_argument("--grid", action="store_true", help="the shared assets' 5 photos x 5 paintings instead")
    ap.add_argument(
        "--methods", default=",".join(METHODS), help="LOSS:OPTIMIZER[:STYLE_WEIGHT[:ITERATIONS]], comma separated"
    )
    ap.add_argument("--threads", type=int, default=None, help="torch's CPU threads (default: torch's own)")
    ap.add_argument("--sheets", default=None, help="folder for one contact sheet per method")
    ap.add_argument("--keep", default=None, help="folder for every picture and its scores (resumable)")
    ap.add_argument("--shard", default=None, help="K/N: make only every N-th pair from the K-th (needs --keep)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    import torch

    from benchmarks.common import device_name, write_results
    from dreamstyle.sheets import Panel, contact_sheet

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.grid:
        pairs = grid_pairs()
        if not pairs:
            print(f"skipped: no images under {ASSET_IMAGES}")
            return 0
    else:
        inputs = ROOT / "samples" / "inputs"
        pairs = [(inputs / c, inputs / s) for c, s in PAIRS[: args.pairs]]
    keep = Path(args.keep) if args.keep else None
    if args.shard and keep is None:
        ap.error("--shard needs --keep: the shards meet in its folder")
    try:
        mine = shard(args.shard, len(pairs))
    except ValueError as e:
        ap.error(str(e))
    sheets = Path(args.sheets) if args.sheets else None
    if sheets:
        sheets.mkdir(parents=True, exist_ok=True)
    columns = len({s for _, s in pairs}) if args.grid else len(pairs)
    with tempfile.TemporaryDirectory() as tmp:
        judge, weights, what = judge_backbone(Path(tmp))
        print(f"device: {device_name('cpu')}  {args.size} px  {args.iterations} iterations  judge: {what}")
        rows = []
        for method in args.methods.split(","):
            loss, optimizer, *rest = method.split(":")  # LOSS:OPTIMIZER[:STYLE_WEIGHT[:ITERATIONS]]
            weight, steps = (rest + [None, None])[:2]
            extra = {"style_weight": float(weight)} if weight else {}
            iterations = int(steps) if steps else args.iterations
            folder = keep / f"{args.size}px" / "-".join([loss, optimizer, *rest]) if keep else None
            done = []  # (index, image, scores with the seconds it took)
            for i, (content, style) in enumerate(pairs):
                stem = f"{content.stem}__{style.stem}"
                if folder and (folder / f"{stem}.json").is_file():
                    done.append(
                        (i, Image.open(folder / f"{stem}.png"), json.loads((folder / f"{stem}.json").read_text()))
                    )
                    continue
                if i not in mine:
                    continue
                image, scores = make_pair(content, style, loss, optimizer, iterations, extra, args.size, judge, weights)
                if folder:
                    keep_pair(folder, stem, image, scores)
                done.append((i, image, scores))
            if len(done) < len(pairs):
                print(f"  {method:<18} {len(done)} of {len(pairs)} pairs made (the other shards make the rest)")
                continue
            row = {"method": method, "iterations": iterations, "seconds": round(sum(s["seconds"] for *_, s in done), 1)}
            for key in SCORES:
                row[key] = sum(s[key] for *_, s in done) / len(done)
            row["per_pair"] = [{key: s[key] for key in SCORES} for *_, s in done]
            rows.append(row)
            print(
                f"  {method:<18} {row['seconds']:7.1f} s   content {row['content']:.4f}   style: Gram "
                f"{row['style_gram']:.4f}  sliced W. {row['style_swd']:.4f}   per pair (content/sliced W.): "
                + " ".join(f"{s['content']:.3f}/{s['style_swd']:.4f}" for *_, s in done),
                flush=True,
            )
            if sheets:
                contact_sheet(
                    [Panel(im, [f"{pairs[i][0].stem} x {pairs[i][1].stem}"]) for i, im, _ in done],
                    (args.size, args.size),
                    columns=columns,
                    title=f"--style-loss {loss} --optimizer {optimizer}"
                    + (f" --style-weight {weight}" if weight else "")
                    + f" --iterations {iterations}",
                ).save(sheets / f"{'-'.join([loss, optimizer, *rest])}.png")
    if args.shard or len(rows) < len(args.methods.split(",")):
        return 0  # a shard: the collecting run writes the record
    record = {
        "benchmark": "styles",
        "device": "cpu",
        "device_name": device_name("cpu"),
        "size": args.size,
        "iterations": args.iterations,
        "threads": torch.get_num_threads(),
        "pairs": [[c.name, s.name] for c, s in pairs],
        "judge": what,
        "rows": rows,
        "date": time.strftime("%Y-%m-%d"),
    }
    print("->", write_results("styles", record, args.json))
    return 0


if __name__ == "__main__":
    sys.exit(main())
