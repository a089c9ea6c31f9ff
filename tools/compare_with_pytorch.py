"""Speed of regstudy against PyTorch eager, measured side by side on this machine.

Runs `regstudy bench` and the peer script `../shared/bench/pytorch_peer.py` alternately
(regstudy fp32, PyTorch fp32, [regstudy bf16, PyTorch bf16,] regstudy fp32, ...), `--pairs`
times per model, and prints the median of the per-pair ratios of training and inference
throughput, then a Markdown table.

Each precision is compared with PyTorch in the configuration a PyTorch user picks for speed on
a CPU: regstudy fp32 against fp32 `channels_last` (NHWC, regstudy's own layout), and with
`--with-bf16` regstudy `--precision bf16` against bf16 autocast + `channels_last`.
`--peer-layout nchw` measures PyTorch's default layout instead (slower on CPUs; not the fair
reference).

Timings on shared machines drift, and PyTorch's more than regstudy's (its bf16 rate is
bimodal on some machines): a ratio of two runs taken back to back is far steadier than any
absolute figure, and the median of five or more such ratios steadier still.

    python3 -m venv .venv-peer && .venv-peer/bin/pip install torch==2.13.0 numpy   # once, ~5 GB
    cargo build --release
    python3 tools/compare_with_pytorch.py --pairs 5 --with-bf16 --python /path/to/venv/bin/python

Only the standard library is needed here; PyTorch runs in the peer's own interpreter.
"""
import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = ["simple-cnn", "levy-initial", "levy-new", "standard-cnn", "resnet18"]
# Multiply-adds x 2 per image of one training step (forward + backward), for the share of peak.
TRAIN_FLOP_PER_IMAGE = {"simple-cnn": 36.8e6, "standard-cnn": 233e6}


def run_json(command):
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def median(values):
    return statistics.median(values) if values else float("nan")


def measure_model(model, args, timing):
    """Alternates the programs `args.pairs` times; returns the per-run figures of each."""
    layout = ["--channels-last"] if args.peer_layout == "nhwc" else []
    peers = {"fp32": layout}
    if args.with_bf16:
        peers["bf16"] = layout + ["--bf16"]
    # regstudy's run of each precision, then the peer's; the two form one pair.
    runs = {name: {"regstudy": [], "pytorch": []} for name in peers}
    for pair in range(args.pairs):
        line = f"{model:<13} {pair + 1:>2}"
        for name, flags in peers.items():
            ours = run_json([args.regstudy, "bench", "--model", model, "--precision", name] + timing)
            theirs = run_json([args.python, args.peer, model] + timing + flags)
            runs[name]["regstudy"].append(ours)
            runs[name]["pytorch"].append(theirs)
            line += (f"  {name} regstudy {ours['train_img_per_s']:>7.1f} / {ours['infer_img_per_s']:<7.1f}"
                     f" {theirs['config']} {theirs['train_img_per_s']:>7.1f} / {theirs['infer_img_per_s']:<7.1f}"
                     f" ({ours['train_img_per_s'] / theirs['train_img_per_s']:.2f}x /"
                     f" {ours['infer_img_per_s'] / theirs['infer_img_per_s']:.2f}x)")
        print(line, flush=True)
    return runs


def ratios(pair_runs, key):
    return [o[f"{key}_img_per_s"] / t[f"{key}_img_per_s"]
            for o, t in zip(pair_runs["regstudy"], pair_runs["pytorch"])]


def summary_row(model, runs, args):
    cells = [model]
    for name in runs:
        ours = runs[name]["regstudy"]
        cells.append(f"{median([r['train_img_per_s'] for r in ours]):.0f}"
                     f" / {median([r['infer_img_per_s'] for r in ours]):.0f}")
        for key in ("train", "infer"):
            values = ratios(runs[name], key)
            cells.append(f"{median(values):.2f}x ({min(values):.2f}-{max(values):.2f})")
    peak = median([r.get("peak_rss_mb") or float("nan") for r in runs["fp32"]["regstudy"]])
    cells.append(f"{peak:.0f}")
    if args.peak_gflops and model in TRAIN_FLOP_PER_IMAGE:
        gflops = median([r["train_img_per_s"] for r in runs["fp32"]["regstudy"]]) * TRAIN_FLOP_PER_IMAGE[model] / 1e9
        cells.append(f"{gflops:.0f} GFLOP/s = {100 * gflops / args.peak_gflops:.0f}%")
    elif args.peak_gflops:
        cells.append("-")
    return "| " + " | ".join(cells) + " |"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="*", help=f"any of {', '.join(MODELS)} (default: all)")
    p.add_argument("--pairs", type=int, default=5, help="alternations per model (at least 5 for PyTorch's swings)")
    p.add_argument("--train-secs", type=float, default=10.0)
    p.add_argument("--infer-secs", type=float, default=5.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--peer-layout", choices=["nhwc", "nchw"], default="nhwc",
                   help="PyTorch's memory format: nhwc = channels_last (default), nchw = PyTorch's default")
    p.add_argument("--with-bf16", action="store_true", help="also time PyTorch with bf16 autocast")
    p.add_argument("--python", default=str(ROOT / ".venv-peer/bin/python"))
    p.add_argument("--peer", default=str(ROOT.parent / "shared/bench/pytorch_peer.py"))
    p.add_argument("--regstudy", default=str(ROOT / "target/release/regstudy"))
    p.add_argument("--peak-gflops", type=float, default=None,
                   help="this machine's fp32 matrix-product peak (examples/gemm_shapes.rs) for the share of peak")
    args = p.parse_args()
    args.models = args.models or MODELS
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        p.error(f"unknown model {unknown[0]}; expected one of {', '.join(MODELS)}")
    if args.pairs < 1:
        p.error("--pairs must be at least 1")
    timing = ["--train-secs", str(args.train_secs), "--infer-secs", str(args.infer_secs),
              "--threads", str(args.threads)]
    rows = [summary_row(model, measure_model(model, args, timing), args) for model in args.models]
    layout = "channels_last" if args.peer_layout == "nhwc" else "NCHW"
    header = ["model", "regstudy fp32 train / infer img/s",
              f"fp32 train vs PyTorch fp32 {layout}", f"fp32 infer vs PyTorch fp32 {layout}"]
    if args.with_bf16:
        header += ["regstudy bf16 train / infer img/s",
                   f"bf16 train vs PyTorch bf16 {layout}", f"bf16 infer vs PyTorch bf16 {layout}"]
    header.append("regstudy fp32 peak RSS MB")
    if args.peak_gflops:
        header.append("training, share of fp32 peak")
    print()
    print(f"regstudy / PyTorch, median of {args.pairs} per-pair ratios (range), {args.threads} threads:")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    print("\n".join(rows))


if __name__ == "__main__":
    sys.exit(main())
