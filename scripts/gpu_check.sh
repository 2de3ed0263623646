#!/usr/bin/env bash
# One prepared GPU session (the device tool), sized for one call of about 6 minutes: the speed
# benchmark on CUDA (per-model s/run, scaling, vectorised vs sequential seeds), then the report grid
# (410 runs, fp32) as real Hydra sweeps on CUDA, each "name workers K [overrides...]" of $SWEEPS
# (K = seeds vectorised per job, 1 = one seed per run) under a time limit (a sweep cut short keeps its finished
# records), then aggregation. Results are packed into $OUT.
#   DEVICE=cuda bash scripts/gpu_check.sh        (locally: DEVICE=cpu QUICK=1 to dry-run)
#   BENCH_ARGS="--models '' --scaling '' --vectorize 15" SWEEPS="vec6 6 15" bash scripts/gpu_check.sh
set -u
DEVICE=${DEVICE:-cuda}; OUT=${OUT:-/tmp/gpu_out}; QUICK=${QUICK:-0}; SWEEPS=${SWEEPS:-seq 6 1;vec 6 15}
BENCH_ARGS=${BENCH_ARGS:---repeats 2 --vectorize 15 --vectorize-models cnn3_bn,siamese_cnn_aux,resnet,siamese_resnet_aux}
mkdir -p "$OUT"
if [ -d .whl ]; then  # hydra-core, omegaconf, antlr4, the joblib and submitit launchers are not in the GPU image
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1 MNIST_PAIRS_DATA=${MNIST_PAIRS_DATA:-$PWD/.devdata}
PY=${PY:-python3}
small=(); [ "$QUICK" = 1 ] && small=(train.epochs=2 data.n_train=100 data.n_test=100)
{
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv 2>/dev/null
  nproc
  $PY -c "import torch, hydra, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'hydra', hydra.__version__, 'cuda', torch.cuda.is_available())"
  echo "== bench"
  if [ "$QUICK" = 1 ]; then timeout 120 $PY scripts/bench.py --device "$DEVICE" --repeats 1 --epochs 2 --models cnn3,resnet --scaling cnn3 --vectorize 3 --vectorize-models cnn3
  else eval timeout "${BENCH_LIMIT:-130}" $PY scripts/bench.py --device "$DEVICE" $BENCH_ARGS; fi
  IFS=';' read -ra sweeps <<< "$SWEEPS"
  for sweep in "${sweeps[@]}"; do
    read -r name workers k extra <<< "$sweep"
    echo "== sweep $name: experiment=benchmark, $workers workers, device.vectorize=$k ${extra:-}"
    SECONDS=0
    timeout "${SWEEP_LIMIT:-110}" $PY -m mnist_pairs.train -m experiment=benchmark device=$DEVICE hydra.launcher.n_jobs=$workers \
      device.vectorize=$k output_root="$OUT/runs_$name" ${extra:-} "${small[@]}" > "$OUT/sweep_$name.log" 2>&1
    echo "exit $? wall ${SECONDS} s"
    grep "validated\|workers ready\|sweep [0-9]" "$OUT/sweep_$name.log" | sed -n '1,2p;$p'
    echo "records: $(find "$OUT/runs_$name" -name record.json | wc -l)"
  done
  for d in "$OUT"/runs_*/*; do [ -d "$d" ] && timeout 60 $PY -m mnist_pairs.aggregate "$d" 2>&1 | tail -1; done
} 2>&1 | tee "$OUT/gpu_check.log"
tar czf "$OUT/results.tgz" -C "$OUT" $(cd "$OUT" && ls -d runs_* 2>/dev/null) && rm -rf "$OUT"/runs_*
ls -la "$OUT"
