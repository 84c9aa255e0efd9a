#!/usr/bin/env bash
# The GPU checks of the fold-batched path, as one call on a lent GPU machine.
#
# That machine has torch but no skorch and no network, so skorch travels as
# a wheel. Once, here, in the repository root:
#
#     python -m pip download --no-deps -d .whl skorch==1.4.0   # /.whl/ is ignored
#
# then, through the device tool:
#
#     run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=540)
#
# It runs the CUDA tests (skipped on CPU machines) and the VAE benchmark with
# every variant on the GPU; the logs come back under $OUT.
set -euo pipefail
out="${OUT:-/tmp/gpu_check}"
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --target /tmp/site .whl/*.whl
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__)" | tee -a "$out/gpu.txt"
# that machine's torch and numpy are other versions: their deprecation notices
# are not failures of ours there
python3 -m pytest -q -p no:cacheprovider -o addopts="" \
    -W ignore::FutureWarning -W ignore::DeprecationWarning \
    tests/test_batched.py tests/test_models.py -k "cuda or gpu" 2>&1 | tee "$out/tests.log"
python3 benchmarks/run.py --skip-core --device cuda --repeats 1 2>&1 | tee "$out/bench_cuda.log"
