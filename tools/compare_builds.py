#!/usr/bin/env python3
"""Speed of one regstudy build against another, measured side by side on this machine.

Runs `regstudy bench` with each build in turn, per model and alternation, swapping which
build goes first every alternation, and prints the median of the per-pair ratios new / old
with their range, and each build's peak memory. Build the old version with, for example:

    git worktree add /tmp/old v0.2.0-commit && (cd /tmp/old && cargo build --release)
    python3 tools/compare_builds.py /tmp/old/target/release/regstudy target/release/regstudy
"""

import argparse
import json
import statistics
import subprocess

MODELS = ["simple-cnn", "levy-initial", "levy-new", "standard-cnn", "resnet18"]


def bench(binary, model, args):
    command = [
        binary, "bench", "--model", model,
        "--train-secs", str(args.train_secs), "--infer-secs", str(args.infer_secs),
        "--warmup-secs", str(args.warmup_secs), "--threads", str(args.threads),
        "--precision", args.precision,
    ]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def summary(ratios):
    return f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", help="the regstudy binary to compare against")
    parser.add_argument("new", help="the regstudy binary to measure")
    parser.add_argument("models", nargs="*", default=MODELS)
    parser.add_argument("--pairs", type=int, default=3, help="alternations per model")
    parser.add_argument("--train-secs", type=float, default=5)
    parser.add_argument("--infer-secs", type=float, default=2)
    parser.add_argument("--warmup-secs", type=float, default=2)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                        help="the precision both builds train and infer in")
    args = parser.parse_args()

    rows = []
    for model in args.models:
        train, infer, memory = [], [], None
        for pair in range(args.pairs):
            order = [("old", args.old), ("new", args.new)]
            if pair % 2:
                order.reverse()
            result = {name: bench(binary, model, args) for name, binary in order}
            old, new = result["old"], result["new"]
            train.append(new["train_img_per_s"] / old["train_img_per_s"])
            infer.append(new["infer_img_per_s"] / old["infer_img_per_s"])
            memory = (old["peak_rss_mb"], new["peak_rss_mb"])
            print(f"{model:<14} {pair + 1}  {old['engine']} {old['train_img_per_s']:.1f} / "
                  f"{old['infer_img_per_s']:.1f}  {new['engine']} {new['train_img_per_s']:.1f} / "
                  f"{new['infer_img_per_s']:.1f}", flush=True)
        rows.append((model, summary(train), summary(infer), memory))

    print(f"\nnew / old, median of {args.pairs} per-pair ratios (range):")
    print("| model | training | inference | peak RSS MB, old -> new |")
    print("|---|---|---|---|")
    for model, train, infer, (old_mb, new_mb) in rows:
        print(f"| {model} | {train} | {infer} | {old_mb:.0f} -> {new_mb:.0f} |")


if __name__ == "__main__":
    main()
