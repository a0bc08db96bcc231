#!/usr/bin/env bash
# The prepared GPU benchmark (GPU-cluster issue): one script, at most ~8 minutes on one H100/H200.
#
#   (a) bench/correlation.py --device cuda: the torch engine's time against the numpy engine and
#       the published method (both on this machine's CPUs) and its share of the GPU's float32
#       matmul rate measured in the same run;
#   (b) `rosetta mine` of biggan-deep-256 (random weights) against the paper's five encoders at
#       MINE_N images (default 1600) with the models and the pair statistics (torch engine) on the
#       GPU: wall time, seconds and images/s per stage, peak memory.
#
# Each part writes a result file with its provenance (commit, command, machine and GPU name,
# wall time) to $OUT; copy them to bench/results/ and regenerate docs (python docs/generate.py).
#
# Usage on the device machine (repository root):
#   OUT=$OUT bash bench/gpu.sh
# Environment: DEVICE (cuda), CORR_N (20), MINE_N (1600), CORR_BUDGET / MINE_BUDGET (seconds:
# 150 / 300), WHEELS (a folder of wheels the machine's image lacks: open_clip_torch, ftfy,
# wcwidth; fetch them here with `pip download open_clip_torch ftfy wcwidth --no-deps -d
# .gpu-wheels` and carry it), PYTHON (python3). DRY=1 runs tiny sizes (a CPU check of the script).
set -u
OUT=${OUT:?set OUT to an output folder}
DEVICE=${DEVICE:-cuda}
CORR_N=${CORR_N:-20}
MINE_N=${MINE_N:-1600}
CORR_BUDGET=${CORR_BUDGET:-150}
MINE_BUDGET=${MINE_BUDGET:-300}
WHEELS=${WHEELS:-.gpu-wheels}
py=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
if [ -d "$WHEELS" ] && ls "$WHEELS"/*.whl >/dev/null 2>&1; then
  $py -m pip install -q --no-index --no-deps --target /tmp/site "$WHEELS"/*.whl && export PYTHONPATH=/tmp/site:$PYTHONPATH
fi
gpu=$( (nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null || echo cpu) | head -1 | tr ' ' '-' )
echo "device $DEVICE ($gpu); commit $(git rev-parse --short HEAD 2>/dev/null)"
$py -c "import torch, timm, open_clip; print('torch', torch.__version__, 'timm', timm.__version__, 'cuda', torch.cuda.is_available())"

encoders=resnet50.tv_in1k,dino-resnet50,vit_base_patch16_224.dino,vit_base_patch16_224.mae,RN50.openai
small=""
if [ "${DRY:-0}" = 1 ]; then  # tiny sizes: check the script itself on a CPU
  CORR_N=2 MINE_N=12
  small="--small"
  encoders=resnet50.tv_in1k,RN50.openai
  layers="--layers biggan-deep-256=layers.0.relu.0 --layers resnet50.tv_in1k=layer4 --layers RN50.openai=layer4 --chunk-size 6"
fi

echo "== (a) correlation engine on $DEVICE (n=$CORR_N)"
timeout "$CORR_BUDGET" $py bench/correlation.py --n "$CORR_N" $small --repeats 2 --device "$DEVICE" \
  --json "$OUT/correlation-$DEVICE-$gpu.json" || echo "(a) failed or ran out of its $CORR_BUDGET s"

echo "== (b) paper-scale mining run on $DEVICE (n=$MINE_N)"
timeout "$MINE_BUDGET" $py bench/mine.py --n "$MINE_N" --weights random --json "$OUT/mine-paper-$DEVICE-$gpu.json" \
  --mine-args "--generator biggan-deep-256 --encoders $encoders --device $DEVICE --stats-device $DEVICE ${layers:-}" \
  || echo "(b) failed or ran out of its $MINE_BUDGET s: rerun with a smaller MINE_N"
ls -la "$OUT"
