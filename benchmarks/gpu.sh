#!/usr/bin/env bash
# Every CUDA measurement benchmarks/README.md promises, in one call (under 8 minutes on one GPU):
# 512 px Adam and L-BFGS ms/iteration against the naive reference (start-up, whole command, peak
# memory come with them), a 4096 px transfer (time per iteration and peak memory), the dream
# step's overhead over a bare forward+backward, and images per second for a batched folder.
# Everything is appended to one results file.
#
#   bash benchmarks/gpu.sh                                # on a lent GPU: writes benchmarks/results/gpu-<device>-<date>.json
#   DEVICE=cpu QUICK=1 OUT=/tmp/r.json bash benchmarks/gpu.sh   # the same script at toy sizes (the tests run this)
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
DEVICE=${DEVICE:-cuda}
QUICK=${QUICK:-0}
OUT=${OUT:-benchmarks/results/gpu-${DEVICE%%:*}-$(date +%F).json}
WEIGHTS=${WEIGHTS:-default}
if [ "$QUICK" = 1 ]; then    # seconds on a CPU: the script's plumbing, not numbers
  SIZE=64 ITS=3 BIG=96 BIG_ITS=2 FOLDER_SIZE=32 FOLDER_N=2 BATCH=2 WEIGHTS=random
else
  SIZE=512 ITS=500 BIG=4096 BIG_ITS=10 FOLDER_SIZE=256 FOLDER_N=16 BATCH=8
fi
run() { echo "+ $*" >&2; "$@"; }

"$PY" -c "import torch, sys; sys.exit(0 if '$DEVICE' == 'cpu' or torch.cuda.is_available() else 'no CUDA device')"
for opt in adam lbfgs; do
  run "$PY" -m benchmarks.transfer --device "$DEVICE" --size $SIZE --iterations $ITS --optimizer $opt \
    --weights $WEIGHTS --json "$OUT"
done
run "$PY" -m benchmarks.transfer --device "$DEVICE" --size $BIG --iterations $BIG_ITS --optimizer adam \
  --weights $WEIGHTS --sides ours --json "$OUT"
run "$PY" -m benchmarks.dream --device "$DEVICE" --size $SIZE --iterations $((ITS < 50 ? ITS : 50)) \
  --weights $WEIGHTS --json "$OUT"
run "$PY" -m benchmarks.folder --device "$DEVICE" --size $FOLDER_SIZE --images $FOLDER_N --batch $BATCH \
  --iterations $((ITS < 20 ? ITS : 20)) --weights $WEIGHTS --json "$OUT"
echo "results: $OUT"
