#!/usr/bin/env bash
# The GPU check of the encoder (issue 14): the encoder benchmark and the real-model tests with --device cuda.
# About 5 minutes on one GPU; every step has its own time limit, 9 minutes in all.
#   bash benchmarks/gpu_check.sh            (from anywhere; uses .venv/bin/python when present, else python)
# Data: $SAMED_SHARED_DATA/deeplesion (default ../shared/data beside the repository); without it the DSC parts
# are skipped with a message.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
fail=0
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.__version__, torch.cuda.get_device_name())" || exit 1
echo "== encoder benchmark: fp32 against the default precision (fp16) on CUDA"
timeout 240 "$PY" benchmarks/embedding.py --device cuda --repeats 20 || fail=1
echo "== model tests on CUDA"
timeout 300 "$PY" -m pytest -q -p no:cacheprovider -rs --device cuda \
    tests/integration/test_encoder.py tests/integration/test_zero_shot.py tests/integration/test_deeplesion.py || fail=1
exit $fail
