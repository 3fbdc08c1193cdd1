#!/usr/bin/env bash
# device_check.sh: the GPU check of issue 14, one script for a bare GPU machine.
#
# 1. GPU training and evaluation img/s against the model-only ceilings (benchmarks/throughput.py,
#    ResNet-32 on cifar10-sslt, both memory formats) and the FixMatch step (B 64, mu 7);
# 2. the `paper` profile of decoupling, pseudo-label+decoupling and alternate on cifar10-sslt,
#    seed 0, the three at once on the one GPU (each is a chain of small launch-bound ResNet-32
#    steps, so three processes keep the GPU busier than one), their records copied to $OUT.
#
# Run from the repository root:
#   PYTHONPATH=. bash benchmarks/device_check.sh           # on the GPU machine
#   DEVICE_CHECK_TINY=1 bash benchmarks/device_check.sh    # or --tiny: CPU smoke (digits-sslt)
# Data: $SSLT_DATA (default .device_data/, git-ignored, carried to the machine) holds
# cifar10-jpg.tar.gz. Output: $OUT (default device_check_out/): device_check.log,
# throughput.json and records/*.json (at most 8 files, so the device tool brings all back).
#
# Size estimate (H200, before any GPU was had; from the work each run does):
#   cifar10-sslt: |D| = 2,063, |U| = 10,315, test 10,000, largest class 833.
#   decoupling: 200 epochs x 2,063 + cRT 10 x 8,330 (augmented)            ~0.5 M images
#   pseudo-label+decoupling: 0.5 M + 200 epochs x 12,378 (D u U')           ~3.0 M images
#   alternate: 0.5 M + 5 loops x (40 x 12,378 + 8,330 x 10)                 ~3.4 M images
#   ~54 k optimiser steps of batch 128 in all; the longest chain (alternate) ~27 k steps.
#   A ResNet-32 step at batch 128 (bf16, channels_last) is launch-bound on an H200: assume
#   3-8 ms per step with our Python loop => alternate 80-220 s, and the three in parallel
#   finish with it (16 CPU cores; the GPU is far from busy with one). Cache decode of the
#   tarball ~25 s, throughput ~90 s, start-up ~30 s: ~3-6 min in all. RUN_LIMIT (default
#   420 s) stops the runs so the script ends under 9 minutes even if steps are slower; a run
#   stopped that way leaves no record and says so in the log.
set -uo pipefail

TINY=${DEVICE_CHECK_TINY:-0}
for arg in "$@"; do
    case "$arg" in
        --tiny) TINY=1 ;;
        *) echo "device_check.sh: unknown argument '$arg' (valid: --tiny)" >&2; exit 2 ;;
    esac
done

PY=${PYTHON:-python3}
DATA=${SSLT_DATA:-.device_data}
OUT=${OUT:-device_check_out}
RUNS=${DEVICE_CHECK_RUNS:-$(mktemp -d)}
mkdir -p "$OUT/records"
export PYTHONPATH=${PYTHONPATH:-.}
export PYTHONUNBUFFERED=1
LOG="$OUT/device_check.log"
exec > >(tee -a "$LOG") 2>&1
START=$(date +%s)

if [ "$TINY" = 1 ]; then
    DATASET=digits-sslt PROFILE=quick DEVICE=auto RUN_LIMIT=${RUN_LIMIT:-300} THREADS=1
    BENCH=(--cases small-cnn/digits-sslt --quick --fixmatch none --threads 1)
    COMMON=(--set data.min_steps_per_epoch=0 --set epochs=1 --set head_epochs=1)
    declare -A EXTRA=(
        [decoupling]=""
        [pseudo-label+decoupling]="--set finetune_epochs=1"
        [alternate]="--set loops=1 --set loop_epochs=1"
    )
else
    DATASET=cifar10-sslt PROFILE=paper DEVICE=cuda RUN_LIMIT=${RUN_LIMIT:-420} THREADS=4
    BENCH=(--cases resnet32/cifar10-sslt --steps 50 --rounds 3 --eval-images 10000
        --fixmatch 64,7 --threads 4)
    COMMON=()
    declare -A EXTRA=([decoupling]="" [pseudo-label+decoupling]="" [alternate]="")
    if [ ! -f "$DATA/cifar10-jpg.tar.gz" ]; then
        echo "device_check.sh: no $DATA/cifar10-jpg.tar.gz; set SSLT_DATA or carry .device_data" >&2
        exit 2
    fi
fi
METHODS=(decoupling pseudo-label+decoupling alternate)
echo "== device_check.sh $( [ "$TINY" = 1 ] && echo '(tiny)') $(date -u +%FT%TZ), rev $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

echo "== data: build $DATASET once (decodes the tarball into the uint8 cache)"
"$PY" - "$DATASET" "$DATA" <<'EOF' || exit 1
import sys, time
from pathlib import Path
from sslt_bench.config import build_config
from sslt_bench.registry import DATASETS
t = time.time()
b = DATASETS.get(sys.argv[1])
d = b.build(build_config(b.Params, "paper", {}), 0, Path(sys.argv[2]))
s = d.split
print(f"{sys.argv[1]}: |D| {len(s.labeled_idx)}, |U| {len(s.unlabeled_idx)}, test {len(s.test_idx)} ({time.time() - t:.1f} s)")
EOF

echo "== throughput (img/s against the model-only ceiling, both memory formats)"
OMP_NUM_THREADS=$THREADS "$PY" benchmarks/throughput.py --data-root "$DATA" "${BENCH[@]}" \
    --json "$OUT/throughput.json" || echo "throughput.py failed (exit $?)"

echo "== $PROFILE profile of ${METHODS[*]} on $DATASET seed 0, all at once (limit ${RUN_LIMIT} s each)"
declare -A PIDS
for m in "${METHODS[@]}"; do
    # shellcheck disable=SC2086  # EXTRA holds several --set words
    OMP_NUM_THREADS=$THREADS timeout "$RUN_LIMIT" "$PY" -m sslt_bench run --method "$m" \
        --dataset "$DATASET" --profile "$PROFILE" --seed 0 --device "$DEVICE" \
        --data-root "$DATA" --out "$RUNS" --no-progress --fresh "${COMMON[@]}" ${EXTRA[$m]} \
        > "$RUNS/$m.log" 2>&1 &
    PIDS[$m]=$!
done
FAILED=0
for m in "${METHODS[@]}"; do
    wait "${PIDS[$m]}"; rc=$?
    echo "-- $m: exit $rc$([ $rc = 124 ] && echo ' (stopped at RUN_LIMIT: no record)')"
    tail -n 5 "$RUNS/$m.log"
    [ $rc = 0 ] || FAILED=1
done
cp "$RUNS"/records/*.json "$OUT/records/" 2>/dev/null
"$PY" - "$OUT/records" <<'EOF'
import json, sys
from pathlib import Path
for p in sorted(Path(sys.argv[1]).glob("*.json")):
    r = json.loads(p.read_text())
    m = r.get("metrics", {})
    print(f"{r['method']:<26} overall {m.get('overall', float('nan')):6.2f}  many {m.get('many', float('nan')):6.2f}"
          f"  medium {m.get('medium', float('nan')):6.2f}  few {m.get('few', float('nan')):6.2f}"
          f"  train {r.get('train_time_s', 0):7.1f} s  {r.get('train_images', 0) / max(r.get('train_time_s', 1), 1e-9):8.0f} img/s")
EOF
echo "== done in $(( $(date +%s) - START )) s; records in $OUT/records"
exit $FAILED
