#!/usr/bin/env bash
# int8 / int4 against bf16 on one GPU (issue 4, item 3): a real study through `llem run -m`,
# bitsandbytes and torchao for each quantised precision, then the bf16 reference alone.
#   bash benchmarks/gpu_validation/gpu_quantisation.sh OUT_DIR [batch]
# Needs a CUDA GPU with bitsandbytes and/or torchao installed; writes OUT_DIR/quant (the study,
# manifest.json) and OUT_DIR/bf16 (one job), then prints `llem results show` for both.
set -euo pipefail
out=${1:?usage: gpu_quantisation.sh OUT_DIR [batch]}
batch=${2:-8}
common=(model=llama-3.2-1b "batch=$batch" "dataset.num_prompts=$batch" dataset.input_len=128 output_len=128
        energy=nvml measurement.cycles=3 measurement.quantisation_target=0.02 measurement.phase_split=false)
llem run -m precision=int8,int4 pytorch.quantization=bitsandbytes,torchao "${common[@]}" "hydra.sweep.dir=$out/quant" || true
llem run precision=bf16 "${common[@]}" "hydra.run.dir=$out/bf16" || true
llem results show "$out/quant" --quiet || true
llem results show "$out/bf16" --quiet || true
