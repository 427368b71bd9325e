#!/usr/bin/env bash
# The GPU check for the train stage, as one prepared script (about 5 minutes on an H100/H200).
#
# Trains `compact` (8 x 512, context 1024, GPT-2's vocabulary; ~51M parameters) for a fixed
# number of steps in bf16, eager and with torch.compile, next to the plain reference loop,
# and prints tokens/s and model-FLOPs utilisation (MFU against the GPU's dense bf16 peak).
# Then the stage end to end on CUDA (train compiled → export → validate) on a learnable
# synthetic token stream.
#
#   bash benchmarks/gpu_train.sh                 # needs a CUDA build of torch already installed
#   STEPS=50 BATCH=32 bash benchmarks/gpu_train.sh
#   DEVICE=cpu CONFIG=tiny STEPS=3 STAGE_STEPS=20 COMPILE=no bash benchmarks/gpu_train.sh
#                                                # a dry run of the script itself on a CPU
#
# Writes $OUT/gpu_train.json (rows as printed), $OUT/gpu_train.log and the stage's
# validation.json/train_log.jsonl there; OUT defaults to out/gpu-bench. Token files and the
# checkpoint (~800 MB) go to $WORK (default /tmp/webtext-gpu-train). Nothing is downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python}"
OUT="${OUT:-out/gpu-bench}"
WORK="${WORK:-${TMPDIR:-/tmp}/webtext-gpu-train}"
STEPS="${STEPS:-30}"
BATCH="${BATCH:-16}"
DEVICE="${DEVICE:-cuda}"
CONFIG="${CONFIG:-compact}"
COMPILE="${COMPILE:-both}"
STAGE_STEPS="${STAGE_STEPS:-200}"
export DEVICE CONFIG STAGE_STEPS COMPILE
mkdir -p "$OUT" "$WORK"
exec > >(tee "$OUT/gpu_train.log") 2>&1

"$PYTHON" - <<'EOF'
import os, sys
try:
    import torch
except ImportError:
    sys.exit("gpu_train.sh: PyTorch is not installed in this Python")
if os.environ["DEVICE"] == "cpu":
    print(f"torch {torch.__version__}: a dry run on the CPU")
elif not torch.cuda.is_available():
    sys.exit(f"gpu_train.sh: torch {torch.__version__} sees no CUDA device")
else:
    props = torch.cuda.get_device_properties(0)
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {props.name}, "
          f"{props.total_memory / 2**30:.0f} GiB, bf16={torch.cuda.is_bf16_supported()}")
for name in ("numpy", "safetensors"):
    __import__(name)
EOF
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv || true

echo "== $CONFIG, bf16, compile=$COMPILE, ours vs plain ($STEPS timed steps, batch $BATCH)"
"$PYTHON" benchmarks/bench_train.py --device "$DEVICE" --configs "$CONFIG" --dtype bf16 \
    --compile "$COMPILE" --steps "$STEPS" --batch "$BATCH" --json "$OUT/gpu_train.json"

echo "== the stage end to end on $DEVICE: $CONFIG, $STAGE_STEPS steps, then validate"
"$PYTHON" - "$WORK" "$OUT" <<'EOF'
import os, shutil, sys, time
import numpy as np
from webtext_pipeline.train.config import train_config
from webtext_pipeline.train.data import write_tokens
from webtext_pipeline.train.trainer import train
from webtext_pipeline.train.validate import validate

out, results = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(0)
# a learnable stream over 4,096 of the 50,257 ids: pairs (a, f(a)), so every second token is
# predictable from the one before (unigram ~ ln 4096 = 8.3 nats, a perfect model ~ 4.2)
vocab, n = 50257, 20_000_000
first = rng.integers(0, 4096, size=n // 2)
ids = np.stack([first, (first * 7919 + 13) % 4096], axis=1).reshape(-1)
tokens = os.path.join(out, "tokens")
write_tokens(tokens, ids[: n - 1_000_000], ids[n - 1_000_000:], vocab, 50256)
started = time.time()
device, config = os.environ["DEVICE"], os.environ["CONFIG"]
steps = int(os.environ["STAGE_STEPS"])
cfg = train_config(config, max_steps=steps, grad_accum=2, warmup_steps=min(50, steps // 4),
                   eval_interval=max(1, steps // 2), compile=os.environ["COMPILE"] != "no")
result = train(tokens, os.path.join(out, "model"), config, cfg, device=device, resume=False)
report = validate(os.path.join(out, "model"), tokens, max_tokens=1 << 18, device=device)
mfu = f"MFU {result.mfu:.1%}" if result.mfu else "MFU n/a"
print(f"stage: {result.step} steps in {time.time() - started:.0f} s wall, "
      f"{result.tokens_per_s:,.0f} tokens/s, {mfu}, "
      f"val loss {report['val_loss']:.3f} vs unigram {report['baselines']['unigram']:.3f}: "
      f"{'PASS' if report['passed'] else 'FAIL'}")
for name in ("validation.json", "train_log.jsonl", "loss.svg", "config.json"):
    shutil.copyfile(os.path.join(out, "model", name), os.path.join(results, name))
EOF
echo "gpu_train.sh: done; figures in $OUT/gpu_train.json and $OUT/gpu_train.log"
