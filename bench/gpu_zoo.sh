#!/usr/bin/env bash
# Train mini-gen, mini-resnet.ssl and mini-vit.mae side by side on one CUDA GPU for a wall-time
# budget, then leave their checkpoints (and logs) in $OUT for `--export-only` gating on any
# machine. Usage: OUT=dir SECONDS_BUDGET=390 bash bench/gpu_zoo.sh
# Each script measures its own step rate first (--seconds) so its LR schedule ends in time.
set -u
OUT=${OUT:?set OUT to an output folder}
BUDGET=${SECONDS_BUDGET:-390}
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
py=${PYTHON:-python3}
DEV=${DEVICE:-cuda}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
$py -c "import torch, timm, open_clip; print('torch', torch.__version__, 'timm', timm.__version__, 'cuda', torch.cuda.is_available())"
cap=$((BUDGET + 90))
timeout $cap $py bench/train_gen.py --device $DEV --workers 7 --batch ${GEN_BATCH:-128} --lr 1e-3 --seconds $BUDGET \
  --every 500 --grid-every 1000000000 --train-only --checkpoint /tmp/z/gen.pt --docs /tmp/z/docs \
  > $OUT/gen.log 2>&1 &
timeout $cap $py bench/train_resnet.py --model ssl --world simple --device $DEV --workers 5 --batch ${SSL_BATCH:-256} --seconds $BUDGET \
  --every 200 --eval-every 0 --train-only --checkpoint /tmp/z/ssl.pt > $OUT/ssl.log 2>&1 &
timeout $cap $py bench/train_vit.py --device $DEV --workers 3 --batch-size ${MAE_BATCH:-256} --seconds $BUDGET \
  --every 200 --train-only --checkpoint /tmp/z/mae.pt > $OUT/mae.log 2>&1 &
wait
nvidia-smi --query-gpu=memory.used --format=csv,noheader
for f in gen ssl mae; do grep -v "it/s" $OUT/$f.log | tail -4; done
cp /tmp/z/gen.pt /tmp/z/ssl.pt $OUT/ 2>/dev/null
split -b 15m /tmp/z/mae.pt $OUT/mae.pt. 2>/dev/null
ls -la $OUT
