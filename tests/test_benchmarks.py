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


def test_the_style_benchmark_shards_cover_every_pair_once_and_bad_shards_say_so():
    sys.path.insert(0, str(ROOT))
    from benchmarks.styles import shard

    parts = [shard(f"{k}/3", 25) for k in range(3)]
    assert set().union(*parts) == set(range(25)) and sum(map(len, parts)) == 25
    assert shard(None, 4) == {0, 1, 2, 3}
    for bad in ("2", "a/b", "3/3"):
        with pytest.raises(ValueError, match="--shard"):
            shard(bad, 25)


def test_the_style_benchmark_keeps_a_pair_and_does_not_make_it_again(tmp_path, monkeypatch, capsys):
    sys.path.insert(0, str(ROOT))
    import benchmarks.styles as styles

    made = []

    def fake_make(content, style, *args):  # a picture and scores, without the optimization and the judge
        from PIL import Image

        made.append((content.name, style.name))
        return Image.new("RGB", (8, 8), "red"), {"content": 0.5, "style_gram": 0.2, "style_swd": 0.04, "seconds": 1.0}

    monkeypatch.setattr(styles, "make_pair", fake_make)
    monkeypatch.setattr(styles, "judge_backbone", lambda tmp: ("vgg19", None, "vgg19"))
    common = ["--pairs", "2", "--size", "32", "--methods", "gram:lbfgs", "--keep", str(tmp_path / "k")]
    assert styles.main([*common, "--shard", "1/2"]) == 0
    assert made == [("astronaut.png", "great_wave.jpg")]
    assert "1 of 2 pairs made" in capsys.readouterr().out
    assert styles.main([*common, "--shard", "0/2"]) == 0  # the other pair; the first is kept
    assert made[1:] == [("chelsea.png", "starry_night.jpg")]
    out = tmp_path / "out.json"
    assert styles.main([*common, "--sheets", str(tmp_path / "sheets"), "--json", str(out)]) == 0
    assert len(made) == 2  # collecting makes nothing
    record = json.loads(out.read_text())
    record = record[-1] if isinstance(record, list) else record
    assert record["rows"][0]["seconds"] == 2.0 and len(record["rows"][0]["per_pair"]) == 2
    assert (tmp_path / "sheets" / "gram-lbfgs.png").is_file()
