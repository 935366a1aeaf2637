"""Streaming video: the peak memory of whole ``dreamstyle dream VIDEO -o OUT.mp4`` commands against
the video's length, each in a fresh process.

    python -m benchmarks.video --seconds 10,60 --size 128 --fps 24

For each length a synthetic video (``dreamstyle.video.synthetic_video``: a moving gradient with a
440 Hz tone, AAC) of ``--size`` px is made, then dreamed frame by frame (random weights, one octave,
``--iterations`` steps a frame) into an MP4 with the audio copied. Each run reports its peak resident
memory (ru_maxrss: the network, Python and FFmpeg included), wall time, frames per second and the
frames and audio the output holds. Streaming means the peak does not grow with the length.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--seconds", default="10,60", help="video lengths, comma-separated")
parser.add_argument("--size", type=int, default=128, help="the video's long side (4:3)")
parser.add_argument("--fps", type=int, default=24)
parser.add_argument("--iterations", type=int, default=1, help="dream steps a frame")
parser.add_argument("--json", default=None)


def side(argv: list[str]) -> None:
    """One whole command in this process: ``dreamstyle ARGV``; prints one JSON line."""
    from dreamstyle.cli import main

    t0 = time.perf_counter()
    try:
        main(argv, standalone_mode=False)
    except SystemExit as exc:
        if exc.code:
            raise
    print(
        json.dumps(
            {
                "wall_s": round(time.perf_counter() - t0, 1),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            }
        )
    )


def main() -> None:
    if sys.argv[1:2] == ["--side"]:
        return side(sys.argv[2:])
    args = parser.parse_args()
    from benchmarks.common import device_name, write_results
    from dreamstyle.video import probe, synthetic_video

    folder = Path(tempfile.mkdtemp(prefix="dreamstyle-video-"))
    runs = []
    for seconds in [float(s) for s in args.seconds.split(",")]:
        source = synthetic_video(
            folder / f"in_{seconds:g}s.mp4", seconds=seconds, fps=args.fps, size=(args.size, args.size * 3 // 4)
        )
        out = folder / f"out_{seconds:g}s.mp4"
        cmd = [
            sys.executable,
            "-m",
            "benchmarks.video",
            "--side",
            "dream",
            str(source),
            "-o",
            str(out),
            "--weights",
            "random",
            "--device",
            "cpu",
            "--size",
            str(args.size),
            "--octaves",
            "1",
            "--iterations",
            str(args.iterations),
            "--seed",
            "0",
            "--overwrite",
            "-q",
        ]
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=dict(os.environ, DREAMSTYLE_DISABLE_PLUGIN_AUTOLOAD="1")
        )
        if proc.returncode != 0:
            raise SystemExit(f"{seconds:g} s failed:\n{proc.stderr[-3000:]}")
        found = json.loads(proc.stdout.strip().splitlines()[-1])
        info = probe(out)
        run = {
            "seconds": seconds,
            "frames": info["frames"],
            "size": list(info["size"]),
            **found,
            "frames_per_s": round(info["frames"] / found["wall_s"], 2),
            "audio": info["audio"],
            "audio_s": round(info["audio_duration"], 2),
        }
        runs.append(run)
        print(json.dumps(run), flush=True)
    for a, b in zip(runs, runs[1:]):
        print(
            f"{a['seconds']:g} -> {b['seconds']:g} s: frames x{b['frames'] / a['frames']:.1f}, "
            f"peak memory x{b['peak_rss_mb'] / a['peak_rss_mb']:.2f}"
        )
    record = {
        "benchmark": "video",
        "device_name": device_name("cpu"),
        "fps": args.fps,
        "iterations": args.iterations,
        "weights": "random",
        "runs": runs,
    }
    print("results:", write_results("video", record, args.json))


if __name__ == "__main__":
    main()
