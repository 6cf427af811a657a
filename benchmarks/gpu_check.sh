#!/usr/bin/env bash
# make gpu-check: the one prepared check for a lent GPU. Runs the `cuda` tests (CUDA against CPU,
# every chapter's smoke plan precomputed on the GPU), the benchmarks with --device cuda and the
# throughput table; writes one log, $OUT/gpu-check.log (or benchmarks/results/), ending in a table
# of sections with their exit codes and wall times.
#
# The GPU machine gets a copy of the repository only. `make gpu-prepare` (here, before the call)
# fills the ignored folder .gpu/ with what must travel: MNIST and the CIFAR-10 test split, and the
# smoke profile's CIFAR-10 checkpoints (the training split, 141 MB, cannot travel). Carry `.gpu`.
# Uses the machine's own python3 (torch 2.11 + CUDA there); no venv, no install.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-benchmarks/results}
mkdir -p "$out"
log="$out/gpu-check.log"
: > "$log"
py=${PYTHON:-python3}
[ -d .gpu/data ] || { echo "gpu-check: no .gpu/data; run 'make gpu-prepare' here and carry .gpu" >&2; exit 2; }
# the CPU side of the comparisons runs with the machine's own kernels (the pin is for nbval references)
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TQDM_DISABLE=1 ADVLAB_PIN_CPU=0 \
       ADVLAB_DOWNLOAD=0 ADVLAB_DATA="$PWD/.gpu/data" ADVLAB_CACHE="$PWD/.gpu/cache" ADVLAB_GPU_CACHE="$PWD/.gpu/cache"
start=$SECONDS
summary=()
section() {  # section NAME SECONDS COMMAND...: one part, its output appended to the log, never fatal
    local name=$1 limit=$2 t=$SECONDS rc
    shift 2
    printf '\n## %s\n$ %s\n' "$name" "$*" >> "$log"
    timeout "$limit" "$@" >> "$log" 2>&1
    rc=$?
    summary+=("| $name | $rc | $((SECONDS - t)) s |")
    echo "gpu-check: $name: exit $rc after $((SECONDS - t)) s (total $((SECONDS - start)) s)"
}
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv,noheader
  $py -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; } >> "$log" 2>&1
# limits add up to 520 s, so the whole check fits an 8-minute call with the machine's start-up
section "cuda tests" 230 $py -m pytest -q -m cuda tests/test_cuda.py -p no:cacheprovider -rfE --durations=8
section "attack overhead" 60 $py benchmarks/attack_overhead.py --device cuda --repeats 5
section "fast AT fp32" 55 $py benchmarks/fast_at_mnist.py --device cuda --precision fp32 --n 1000
section "fast AT bf16" 55 $py benchmarks/fast_at_mnist.py --device cuda --precision bf16 --n 1000
section "throughput" 70 $py benchmarks/gpu_throughput.py --device cuda --seconds 1.5
section "EOT overhead" 15 $py benchmarks/eot_overhead.py --device cuda
section "smoothing" 15 $py benchmarks/smoothing_throughput.py --device cuda
section "bound cost" 20 $py benchmarks/bound_cost.py --device cuda
printf '%s\n' "" "| section | exit | wall |" "|---|---|---|" "${summary[@]}" | tee -a "$log"
echo "gpu-check: $((SECONDS - start)) s in all; log: $log"
