#!/usr/bin/env bash
# One prepared GPU session (the device tool): the speed benchmark on CUDA (with vectorised seeds and
# bf16), the report grid as real Hydra sweeps on CUDA, one seed per run and then with vectorised
# seeds (device.vectorize=$VEC), and the replication grid, each under a time limit (a sweep cut short
# keeps its finished records: they resume), then aggregation. Results are packed into $OUT.
#   DEVICE=cuda WORKERS=4 bash scripts/gpu_check.sh        (locally: DEVICE=cpu QUICK=1 to dry-run)
set -u
DEVICE=${DEVICE:-cuda}; WORKERS=${WORKERS:-4}; OUT=${OUT:-/tmp/gpu_out}; QUICK=${QUICK:-0}; VEC=${VEC:-10}
mkdir -p "$OUT"
if [ -d .whl ]; then  # hydra-core, omegaconf, antlr4, the joblib launcher are not in the GPU image
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1 MNIST_PAIRS_DATA=${MNIST_PAIRS_DATA:-$PWD/.devdata}
PY=${PY:-python3}
small=(); [ "$QUICK" = 1 ] && small=(train.epochs=1 data.n_train=100 data.n_test=100 'hydra.sweeper.grids.0.seed=0' 'hydra.sweeper.grids.1.seed=0')
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
$PY -c "import torch, hydra, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'hydra', hydra.__version__, 'cuda', torch.cuda.is_available())"
{
  echo "== bench"
  if [ "$QUICK" = 1 ]; then timeout 120 $PY scripts/bench.py --device "$DEVICE" --repeats 1 --epochs 2 --models cnn3,resnet --scaling cnn3 --workers "$WORKERS" --vectorize 3 --vectorize-models cnn3
  else timeout 180 $PY scripts/bench.py --device "$DEVICE" --repeats 2 --workers "$WORKERS" --vectorize "$VEC"; fi
  for sweep in "benchmark" "benchmark device.vectorize=$VEC output_root=$OUT/runs_vec" "replication"; do
    set -- $sweep; exp=$1; shift
    echo "== sweep $exp $*"
    SECONDS=0
    timeout "${SWEEP_LIMIT:-200}" $PY -m mnist_pairs.train -m experiment=$exp device=$DEVICE hydra.launcher.n_jobs=$WORKERS \
      output_root="$OUT/runs" "${small[@]}" "$@" > "$OUT/sweep_$exp$#.log" 2>&1
    echo "exit $? wall ${SECONDS} s"
    grep "sweep " "$OUT/sweep_$exp$#.log" | tail -1
  done
  for d in "$OUT"/runs/* "$OUT"/runs_vec/*; do [ -d "$d" ] && $PY -m mnist_pairs.aggregate "$d" 2>&1 | tail -1; done
} 2>&1 | tee "$OUT/gpu_check.log"
tar czf "$OUT/results.tgz" -C "$OUT" runs $( [ -d "$OUT/runs_vec" ] && echo runs_vec ) && rm -rf "$OUT/runs" "$OUT/runs_vec"
ls -la "$OUT"
