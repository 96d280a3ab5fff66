#!/usr/bin/env bash
# The GPU check, one command on a machine with a CUDA GPU (budget: 8 minutes on one H200):
#   1. versions and the device;
#   2. the training tests on CUDA (not the slow ones; reloaded predictions compared at the
#      GPU's tolerance, see tests/training/conftest.py);
#   3. the learning test in bf16 mixed precision on CUDA;
#   4. the throughput table (benchmarks/train_throughput.py, 448 px, batch 32, bf16), the
#      comparator's too (--task pairwise: 16 pairs per step, two images per prompt).
# Offline: HF_HUB_OFFLINE=1 and no hub kernels. Any failure stops it with "GPU CHECK FAILED"
# and a non-zero exit; a complete run ends with "GPU CHECK PASSED". Record its output in
# docs/performance.md (Training).
#
#     bash benchmarks/gpu_check.sh 2>&1 | tee gpu_check.log
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
trap 'echo "GPU CHECK FAILED at line $LINENO: $BASH_COMMAND" >&2' ERR
started=$SECONDS

echo "== versions and device"
python3 - <<'PY'
import sys

import accelerate, peft, torch, transformers

print(f"python {sys.version.split()[0]}, torch {torch.__version__} (CUDA {torch.version.cuda}), "
      f"transformers {transformers.__version__}, peft {peft.__version__}, "
      f"accelerate {accelerate.__version__}")
if not torch.cuda.is_available():
    sys.exit("no CUDA device: this check needs a GPU")
props = torch.cuda.get_device_properties(0)
print(f"device: {props.name}, {props.total_memory / 2**30:.1f} GiB, "
      f"{torch.cuda.device_count()} visible, bf16: {torch.cuda.is_bf16_supported()}")
PY

echo "== training tests on CUDA"
timeout 300 python3 -m pytest tests/training -q -x -m "not slow" -p no:cacheprovider

echo "== learning test, bf16 mixed precision on CUDA"
JODKIT_TEST_PRECISION=bf16 timeout 150 python3 -m pytest tests/training/test_train_learning.py \
    -q -x -s -p no:cacheprovider

echo "== throughput: images/s training / inference, peak GiB (448 px, batch 32, bf16)"
settings=(
    "--shape 2b"
    "--shape 2b --all-logits"
    "--shape 7b"
    "--shape 7b --ckpt-only vision"
    "--shape 2b --task pairwise"
    "--shape 7b --task pairwise"
)
for setting in "${settings[@]}"; do
    echo "-- $setting"
    # shellcheck disable=SC2086
    timeout 100 python3 benchmarks/train_throughput.py $setting --batch 32 --steps 3 --warmup 1
done

echo "GPU CHECK PASSED in $((SECONDS - started)) s"
