#!/usr/bin/env bash
# Run attnlab on the local GPU(s).
#
#   launch/gpu.sh [--gpus=0,1] [--mem-fraction=0.9] [--deterministic] [--dry-run] -- \
#       --config=configs/adding.py:transformer --workdir=runs/adding_tf [more flags]
#
# --gpus sets CUDA_VISIBLE_DEVICES (all by default; several GPUs train data-parallel through the
# jit mesh), --mem-fraction sets XLA_PYTHON_CLIENT_MEM_FRACTION (JAX preallocates 75% otherwise),
# --deterministic adds XLA_FLAGS=--xla_gpu_deterministic_ops=true (bit-reproducible, slower).
# Needs the CUDA build of JAX: pip install -e ".[cuda]". It runs from the repository root, so a
# relative --workdir is under it; --dry-run prints that cd and the command, and exits.
set -euo pipefail
gpus="" mem="" deterministic=0 dry=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --gpus=*) gpus="${1#*=}" ;;
    --mem-fraction=*) mem="${1#*=}" ;;
    --deterministic) deterministic=1 ;;
    --dry-run) dry=1 ;;
    --) shift; break ;;
    *) echo "launch/gpu.sh: unknown option $1 (flags for attnlab train go after --)" >&2; exit 2 ;;
  esac
  shift
done
env_vars=()
[[ -n "$gpus" ]] && env_vars+=("CUDA_VISIBLE_DEVICES=$gpus")
[[ -n "$mem" ]] && env_vars+=("XLA_PYTHON_CLIENT_MEM_FRACTION=$mem")
[[ $deterministic == 1 ]] && env_vars+=("XLA_FLAGS=--xla_gpu_deterministic_ops=true ${XLA_FLAGS:-}")
cmd=(env "${env_vars[@]}" python3 -m attnlab train "$@")
root="$(cd "$(dirname "$0")/.." && pwd)"
if [[ $dry == 1 ]]; then  # the cd too: a relative --workdir is relative to the repository root
  printf 'cd %q && ' "$root"; printf '%q ' "${cmd[@]}"; echo
  exit 0
fi
cd "$root"
exec "${cmd[@]}"
