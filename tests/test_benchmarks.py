"""The benchmark scripts run (their numbers are not tested: timings belong in benchmarks/results)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_script_runs_every_measurement_on_the_cpu_at_toy_sizes(tmp_path):
    """benchmarks/gpu.sh is the one script a lent GPU runs; here it runs with DEVICE=cpu QUICK=1."""
    if shutil.which("bash") is None:
        pytest.skip("no bash")
    out = tmp_path / "gpu.json"
    env = dict(os.environ, DEVICE="cpu", QUICK="1", OUT=str(out), PYTHON=sys.executable)
    proc = subprocess.run(["bash", "benchmarks/gpu.sh"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = json.loads(out.read_text())
    assert [r["benchmark"] for r in records] == ["transfer", "transfer", "transfer", "dream", "folder"]
    assert [r.get("optimizer") for r in records[:3]] == ["adam", "lbfgs", "adam"]
    assert "speedup" in records[0] and "reference" not in records[2]  # the big print runs ours alone
    assert all(r["device"] == "cpu" and r["commit"] for r in records)
    assert records[0]["precision"] in ("bfloat16", "fp32") and records[3]["precision"] == records[0]["precision"]


def test_the_judge_scores_the_painting_closest_to_itself_in_style(tmp_path):
    sys.path.insert(0, str(ROOT))
    from benchmarks.score import Judge

    content, style = ROOT / "samples/inputs/chelsea.png", ROOT / "samples/inputs/starry_night.jpg"
    judge = Judge(content, style)
    from PIL import Image

    small_content = tmp_path / "c.png"
    small_style = tmp_path / "s.png"
    Image.open(content).convert("RGB").resize((96, 64)).save(small_content)
    Image.open(style).convert("RGB").resize((96, 60)).save(small_style)
    photo, painting = judge(small_content), judge(small_style)
    assert painting["style"] < photo["style"] and photo["content"] < painting["content"]
