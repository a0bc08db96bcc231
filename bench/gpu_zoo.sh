#!/usr/bin/env bash
# Train mini-gen, mini-resnet.ssl and mini-vit.mae side by side on one CUDA GPU for a wall-time
# budget, then leave their checkpoints (and logs) in $OUT for `--export-only` / `--gate` gating on
# any machine. Usage: OUT=dir SECONDS_BUDGET=390 bash bench/gpu_zoo.sh
# mini-gen and mini-vit.mae measure their own step rate first (--seconds) so their LR schedule
# ends in time; mini-resnet.ssl runs its fixed 3,000 steps (its GPU time is not measured yet:
# the timeout cuts it at the budget, and its ckpt.pt resumes).
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
# mini-resnet.ssl: the CPU recipe of issue 23 (fixed step count; renders its 50k-scene cache first)
timeout $cap $py bench/train_ssl_cpu.py --objective simclr --steps 3000 --batch 256 --lr 2e-3 --view-size 48 \
  --device $DEV --threads 4 --cache /tmp/z/ssl-cache --out /tmp/z/ssl --probe-every 500 > $OUT/ssl.log 2>&1 &
timeout $cap $py bench/train_vit.py --device $DEV --workers 3 --batch-size ${MAE_BATCH:-256} --seconds $BUDGET \
  --every 200 --train-only --checkpoint /tmp/z/mae.pt > $OUT/mae.log 2>&1 &
wait
nvidia-smi --query-gpu=memory.used --format=csv,noheader
for f in gen ssl mae; do grep -v "it/s" $OUT/$f.log | tail -4; done
cp /tmp/z/gen.pt $OUT/ 2>/dev/null; cp /tmp/z/ssl/ckpt.pt $OUT/ssl.pt 2>/dev/null; cp /tmp/z/ssl/probe.jsonl $OUT/ssl-probe.jsonl 2>/dev/null
split -b 15m /tmp/z/mae.pt $OUT/mae.pt. 2>/dev/null
ls -la $OUT
