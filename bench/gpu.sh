#!/usr/bin/env bash
# The whole benchmark on a GPU machine in one go, in about 6 minutes (each step has a time
# limit; all of them together stay under 10).
#
#   bash bench/gpu.sh                # on the GPU machine, from a checkout of the repository
#   bash bench/gpu.sh fetch-wheels   # beforehand, where pip reaches PyPI: wheels into .whl/
#
# A GPU machine usually has torch (with CUDA) and often transformers; what it lacks is
# installed from .whl/ (bring that folder along) or, failing that, from PyPI. The wheels of this
# project's versions weigh: opencv-python-headless 61 MB (Ultralytics needs cv2), transformers
# 14 MB, faiss-cpu (search rows) 19 MB, tokenizers 3.4 MB, ultralytics 1.4 MB, huggingface_hub,
# safetensors, sentence-transformers and ultralytics-thop under 1 MB each. Only missing or too-old packages are
# installed (with --no-deps, so a working torch is never replaced).
# Models are built here (random weights, real sizes: bench/real_size_models.py, ~2.7 GB in
# tmp/bench-models); the COCO sample is used when IMGRET_SHARED points at a folder holding
# data/coco-sample, else Ultralytics' two bundled photos stand in for it.
# Results: JSON and logs in $OUT (or tmp/bench-gpu); add them to bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
WHEELS=.whl
# distribution==version  import-name  (the versions this project is developed with)
PACKAGES=(
  "transformers==5.24.0 transformers"
  "tokenizers==0.23.3 tokenizers"
  "huggingface_hub==2.4.0 huggingface_hub"
  "safetensors==0.8.0 safetensors"
  "sentence-transformers==6.2.0 sentence_transformers"
  "ultralytics==8.4.190 ultralytics"
  "ultralytics-thop==2.2.3 thop"
  "opencv-python-headless==5.0.0.93 cv2"
  "faiss-cpu==1.15.1 faiss"
)

if [[ "${1:-}" == "fetch-wheels" ]]; then
  mkdir -p "$WHEELS"
  "$PYTHON" -m pip download --no-deps --only-binary=:all: -d "$WHEELS" \
    $(for p in "${PACKAGES[@]}"; do echo "${p%% *}"; done)
  du -sh "$WHEELS"
  exit 0
fi

OUT="${OUT:-tmp/bench-gpu}"
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu.log") 2>&1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 YOLO_OFFLINE=1 YOLO_AUTOINSTALL=0
export TOKENIZERS_PARALLELISM=false

"$PYTHON" - <<'EOF' || { echo "torch with CUDA is needed: install it first"; exit 1; }
import torch
assert torch.cuda.is_available(), "no CUDA device visible to torch"
print("torch", torch.__version__, "on", torch.cuda.get_device_name(0))
EOF
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true

# Install what is missing or older than this project's version (major.minor compared).
for entry in "${PACKAGES[@]}"; do
  spec="${entry%% *}"; module="${entry##* }"; want="${spec##*==}"
  if "$PYTHON" - "$module" "$want" 2>/dev/null <<'EOF'; then continue; fi
import importlib, sys
from importlib import metadata
module, want = sys.argv[1], sys.argv[2]
importlib.import_module(module)
names = {"cv2": "opencv-python-headless", "thop": "ultralytics-thop", "faiss": "faiss-cpu"}
try:
    have = metadata.version(names.get(module, module).replace("_", "-"))
except metadata.PackageNotFoundError:
    have = metadata.version("opencv-python") if module == "cv2" else "0"
major_minor = lambda v: tuple(int(x) for x in v.split(".")[:2])
sys.exit(0 if major_minor(have) >= major_minor(want) else 1)
EOF
  echo "installing $spec"
  if [[ -d "$WHEELS" ]] && "$PYTHON" -m pip install -q --no-deps --no-index \
      --find-links "$WHEELS" "$spec"; then
    continue
  fi
  "$PYTHON" -m pip install -q --no-deps "$spec" || {
    echo "cannot install $spec: run 'bash bench/gpu.sh fetch-wheels' where PyPI is reachable"
    echo "and bring the .whl/ folder along"
    exit 1
  }
done
"$PYTHON" -c "import faiss" 2>/dev/null || echo "faiss not installed: the sign-code and IVF search rows are left out"

step() {  # step SECONDS NAME COMMAND...: run with a time limit, keep going if it fails
  local limit="$1" name="$2"; shift 2
  echo "=== $name (limit ${limit}s) ==="
  local start=$SECONDS
  timeout "$limit" "$@" || echo "!!! $name failed or timed out (exit $?)"
  echo "=== $name took $((SECONDS - start)) s ==="
}

step 150 "build real-size models" "$PYTHON" bench/real_size_models.py
step 180 "indexing throughput (original loop vs imgret, fp16 batches)" \
  "$PYTHON" bench/indexing.py --device cuda --images 48 --batch-size 48 --text-batch-size 96 \
  --json "$OUT/indexing.json"
step 150 "query latency and search" \
  "$PYTHON" bench/query_latency.py --device cuda --queries 50 --json "$OUT/query_latency.json"
step 90 "cold start" "$PYTHON" bench/cold_start.py --which real-size --images 48 --repeats 1 \
  --json "$OUT/cold_start.json"
echo "done: results in $OUT"
