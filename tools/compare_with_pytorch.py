"""Speed of regstudy against PyTorch eager, measured side by side on this machine.

Runs `regstudy bench` and the peer script `../shared/bench/pytorch_peer.py` alternately
(A B A B ...), `--pairs` times per model, and prints the median of the per-pair ratios of
training and inference throughput. Timings on shared machines drift; a ratio of two runs taken
back to back is far steadier than any absolute figure.

    python3 -m venv .venv-peer && .venv-peer/bin/pip install torch==2.13.0 numpy   # once
    cargo build --release
    python3 tools/compare_with_pytorch.py simple-cnn resnet18 --pairs 3

Only the standard library is needed here; PyTorch runs in the peer's own interpreter.
"""
import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Multiply-adds x 2 per image of one training step (forward + backward), for the share of peak.
TRAIN_FLOP_PER_IMAGE = {"simple-cnn": 36.8e6}


def run_json(command):
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="*", default=["simple-cnn"])
    p.add_argument("--pairs", type=int, default=3)
    p.add_argument("--train-secs", type=float, default=10.0)
    p.add_argument("--infer-secs", type=float, default=5.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--python", default=str(ROOT / ".venv-peer/bin/python"))
    p.add_argument("--peer", default=str(ROOT.parent / "shared/bench/pytorch_peer.py"))
    p.add_argument("--regstudy", default=str(ROOT / "target/release/regstudy"))
    p.add_argument("--peak-gflops", type=float, default=None,
                   help="sgemm peak of this machine (examples/gemm_shapes.rs) for the share of peak")
    args = p.parse_args()
    timing = ["--train-secs", str(args.train_secs), "--infer-secs", str(args.infer_secs),
              "--threads", str(args.threads)]
    print("model        pair  regstudy train/infer img/s   pytorch train/infer img/s   ratios")
    for model in args.models:
        ratios = {"train": [], "infer": []}
        ours_train = []
        for pair in range(args.pairs):
            ours = run_json([args.regstudy, "bench", "--model", model] + timing)
            theirs = run_json([args.python, args.peer, model] + timing)
            for key in ratios:
                ratios[key].append(ours[f"{key}_img_per_s"] / theirs[f"{key}_img_per_s"])
            ours_train.append(ours["train_img_per_s"])
            print(f"{model:<12} {pair + 1:>4}  {ours['train_img_per_s']:>9.1f} / {ours['infer_img_per_s']:<9.1f}"
                  f"        {theirs['train_img_per_s']:>9.1f} / {theirs['infer_img_per_s']:<9.1f}"
                  f"       {ratios['train'][-1]:.2f} / {ratios['infer'][-1]:.2f}", flush=True)
        line = (f"{model}: median ratio regstudy/PyTorch: training {statistics.median(ratios['train']):.2f}x, "
                f"inference {statistics.median(ratios['infer']):.2f}x")
        if args.peak_gflops and model in TRAIN_FLOP_PER_IMAGE:
            gflops = statistics.median(ours_train) * TRAIN_FLOP_PER_IMAGE[model] / 1e9
            line += f"; training at {gflops:.0f} GFLOP/s = {100 * gflops / args.peak_gflops:.0f}% of sgemm peak"
        print(line, flush=True)


if __name__ == "__main__":
    sys.exit(main())
