#!/usr/bin/env bash
# GPU check: the diffusion families at full size with random weights, on this machine's NVIDIA GPU,
# without network. Writes the benchmark JSON (fps at 1/2/4 steps, sequential and stream batch, at
# 512x512 and 1024x576, eager and with CUDA graphs; host syncs and allocations per frame; lag) and
# prints a summary. Without a GPU (or with --cpu) it runs the same code on tiny models at small sizes.
#
# Usage (from the repository root or anywhere):
#   tools/gpu-check.sh [--cpu] [--out FILE] [--families LIST] [--modes LIST] [--sizes LIST] [--frames N]
#   tools/gpu-check.sh --download-wheels [--python-version 3.11]   # on a machine WITH internet
#
# The GPU machine needs Python with PyTorch (CUDA build). The other packages come from the folder
# tools/gpu-check-wheels/ beside this script (or $WHEELS): --download-wheels fills it on a machine
# with internet; copy the repository with that folder to the GPU machine. Packages already
# importable are not installed again. Nothing is downloaded while checking.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
WHEELS="${WHEELS:-$HERE/gpu-check-wheels}"
PYTHON="${PYTHON:-}"
OUT="gpu-check.json"
FAMILIES="sd-turbo,sd15-lcm,sdxs-512,sdxl-turbo"
MODES="eager,graphs"
SIZES=""
FRAMES=30
CPU=0
DOWNLOAD=0
PYVER="3.11"
REQUIREMENTS=(diffusers transformers safetensors peft numpy opencv-python-headless pydantic rich tomlkit
              scipy huggingface_hub)

while [ $# -gt 0 ]; do
  case "$1" in
    --cpu) CPU=1 ;;
    --out) OUT="$2"; shift ;;
    --families) FAMILIES="$2"; shift ;;
    --modes) MODES="$2"; shift ;;
    --sizes) SIZES="$2"; shift ;;
    --frames) FRAMES="$2"; shift ;;
    --download-wheels) DOWNLOAD=1 ;;
    --python-version) PYVER="$2"; shift ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu-check: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

if [ -z "$PYTHON" ]; then
  for candidate in "$ROOT/.venv/bin/python" python3 python; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c "import torch" 2>/dev/null; then
      PYTHON="$candidate"; break
    fi
  done
fi

if [ "$DOWNLOAD" = 1 ]; then
  DL_PYTHON="${PYTHON:-python3}"
  mkdir -p "$WHEELS"
  "$DL_PYTHON" -m pip download --dest "$WHEELS" --only-binary=:all: --python-version "$PYVER" \
    --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    "${REQUIREMENTS[@]}" --no-deps
  # their dependencies, also binary-only for the GPU machine's Python
  "$DL_PYTHON" -m pip download --dest "$WHEELS" --only-binary=:all: --python-version "$PYVER" \
    --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    "${REQUIREMENTS[@]}" || echo "gpu-check: some dependencies were not downloadable as wheels; see above" >&2
  echo "gpu-check: wheels in $WHEELS; copy the repository with that folder to the GPU machine"
  exit 0
fi

if [ -z "$PYTHON" ]; then
  echo "gpu-check: no Python with PyTorch found; set PYTHON=/path/to/python (with torch installed)" >&2
  exit 2
fi

missing=$("$PYTHON" - <<'EOF'
import importlib.util
names = {"diffusers": "diffusers", "transformers": "transformers", "safetensors": "safetensors", "numpy": "numpy",
         "cv2": "opencv-python-headless", "pydantic": "pydantic", "rich": "rich", "scipy": "scipy"}
print(" ".join(pkg for mod, pkg in names.items() if importlib.util.find_spec(mod) is None))
EOF
)
if [ -n "$missing" ]; then
  if [ ! -d "$WHEELS" ]; then
    echo "gpu-check: missing Python packages ($missing) and no wheel folder at $WHEELS;" \
         "run tools/gpu-check.sh --download-wheels on a machine with internet and copy the folder here" >&2
    exit 2
  fi
  echo "gpu-check: installing $missing from $WHEELS (no network)"
  # shellcheck disable=SC2086
  "$PYTHON" -m pip install --no-index --find-links "$WHEELS" $missing
fi

has_gpu=$("$PYTHON" -c "import torch; print(int(torch.cuda.is_available()))")
if [ "$CPU" = 1 ] || [ "$has_gpu" = 0 ]; then
  [ "$has_gpu" = 0 ] && echo "gpu-check: torch sees no CUDA GPU; running the CPU check (tiny models, small sizes, no fps)"
  DEVICE="cpu"
  EXTRA=(--torch-threads 1)
  FRAMES_USED=$(( FRAMES < 4 ? FRAMES : 4 ))
  [ "$FAMILIES" = "sd-turbo,sd15-lcm,sdxs-512,sdxl-turbo" ] && FAMILIES="all"
else
  DEVICE="cuda"
  EXTRA=()
  FRAMES_USED="$FRAMES"
  "$PYTHON" -c "import torch; p = torch.cuda.get_device_properties(0); print(f'gpu-check: {p.name}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}, CUDA {torch.version.cuda}')"
fi

cd "$ROOT"
args=(run.py bench render --only-families --set "render.device=\"$DEVICE\"" --families "$FAMILIES"
      --modes "$MODES" --family-frames "$FRAMES_USED" --json "$OUT" "${EXTRA[@]}")
[ -n "$SIZES" ] && args+=(--sizes "$SIZES")
HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 "$PYTHON" "${args[@]}" > /dev/null

"$PYTHON" - "$OUT" <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))["diffusion_families"]
print(f"gpu-check: device {report['device']} {report.get('gpu') or ''}, torch {report['torch']}; written to {sys.argv[1]}")
worst = 0.0
for family in report["families"]:
    print(f"  {family['family']:<14} {family['architecture']}, UNet {family['unet_params_m']}M params; "
          f"host syncs per frame (max) {family['host_syncs_per_frame']}")
    for run in family["runs"]:
        if "error" in run:
            print(f"    {run['mode']:<7} failed: {run['error']}")
            continue
        worst = max(worst, run["host_syncs_per_frame"])
        fps = f"{run['fps']:8.1f} fps" if report["device"] == "cuda" else f"{run['ms_per_frame']:8.1f} ms (CPU, tiny)"
        alloc = "" if run["allocations_per_frame"] is None else f", {run['allocations_per_frame']:.0f} allocations/frame"
        first = f", first frame {run['first_frame_s']} s" if "first_frame_s" in run else ""
        print(f"    {run['mode']:<7} {run['width']}x{run['height']} {run['steps']} step(s) "
              f"{'stream' if run['stream_batch'] else 'seq   '} {fps}, lag {run['frames_of_lag']}, "
              f"syncs {run['host_syncs_per_frame']}{alloc}{first}")
status = "ok" if worst <= 1 else "FAILED (more than one host sync per frame)"
print(f"gpu-check: host syncs per frame <= 1: {status}")
sys.exit(0 if worst <= 1 else 1)
EOF
