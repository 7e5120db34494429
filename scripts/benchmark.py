"""Training-step throughput (clips/s) and peak memory of TSN-ERM, APN-ERM, APN + ADA*, the baseline models
(TRN, TRN-ATTN, TSM, I3D, Non-local) and the first three on a ViT frame encoder (`--variants` picks some).

    python scripts/benchmark.py --preset paper   # ResNet-50, M=5, 224x224, batch 40, T_max=5 (needs CUDA)
    python scripts/benchmark.py --preset small   # frame_smallcnn, M=5, 32x32, batch 32, T_max=5 (CPU)
    python scripts/benchmark.py --preset paper --bf16 --channels-last
    python scripts/benchmark.py --preset small --variants ViT-TSN-ERM ViT-APN-ERM "ViT-APN+ADA*"

Each variant is the real trainer (VideoVanilla / APN) built on the synthetic benchmark; one batch is moved to
the device once and `forward_backward` is timed over --steps steps after --warmup steps, so the numbers cover
the whole update of Algorithm 1 (forward, maximisation, backward, optimiser) and exclude data loading.
Reference point: the official APN code trains at 19.75 clips/s with ADA on one H200 (batch 40, M=5, 224x224).

    python scripts/benchmark.py --cost            # what a step costs, on PyTorch's `meta` device (no GPU)
    python scripts/benchmark.py --cost --device cpu --batches 1 2 4   # measured on the CPU, with the per-clip slope

--cost prints, per training step of each COST_ROWS entry, the clip-batch forward and backward passes through
the frame encoder, the theta steps, the GFLOPs and the peak of the activations saved for backward
(analysis/cost.py says how each is counted), with their ratios to ERM and to the official reading. On `meta`
the numbers come from shapes alone, so the paper's batch of 40 is measured exactly on any machine; they are
what a CUDA step computes and saves (docs/performance.md, "What a step costs").
"""
import argparse
import json
import os
import sys
import time

import torch
from tabulate import tabulate

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import components  # noqa: E402
import train  # noqa: E402  (the command line and config assembly of a run)
from analysis.cost import META, meta_log_values, move_trainer, step_cost  # noqa: E402
from framework import TRAINER_REGISTRY, build_trainer  # noqa: E402

PRESETS = {
    "paper": ["--config-file", "configs/trainers/APN/r50_paper.yaml", "MODEL.BACKBONE.PRETRAINED", "False",
              "INPUT.SIZE", "(224, 224)", "INPUT.TEST_SCALE_SIZE", "256", "DATALOADER.TRAIN_X.BATCH_SIZE", "40"],
    "small": ["--config-file", "configs/trainers/APN/smallcnn_cpu.yaml", "DATALOADER.TRAIN_X.BATCH_SIZE", "32"],
}
VARIANTS = [  # name, trainer, overrides
    ("TSN-ERM", "VideoVanilla", ["MODEL.HEAD.NAME", "tsn"]),
    ("APN-ERM", "APN", ["TRAINER.APN.LEVELS", "none"]),
    ("APN+ADA*", "APN", ["TRAINER.APN.LEVELS", "II+III", "TRAINER.APN.T_MAX", "5"]),
]
# The baseline models of Table 1 (issue #8), trained by ERM; a dict gives each preset its own overrides.
_I3D = ["INPUT.SAMPLING", "dense", "MODEL.HEAD.NAME", "tsn"]
VARIANTS += [
    ("TRN-ERM", "VideoVanilla", ["MODEL.HEAD.NAME", "trn"]),
    ("TRN-ATTN-ERM", "VideoVanilla", ["MODEL.HEAD.NAME", "trn_attn"]),
    ("TSM-ERM", "VideoVanilla", {"paper": ["MODEL.BACKBONE.NAME", "frame_resnet50_tsm", "MODEL.HEAD.NAME", "tsn"],
                                 "small": ["MODEL.BACKBONE.NAME", "frame_smallres_tsm", "MODEL.HEAD.NAME", "tsn"]}),
    ("I3D-ERM", "VideoVanilla", {"paper": ["MODEL.BACKBONE.NAME", "i3d_resnet50", "INPUT.NUM_SEGMENTS", "32", *_I3D],
                                 "small": ["MODEL.BACKBONE.NAME", "i3d_resnet_small", "INPUT.NUM_SEGMENTS", "8",
                                           *_I3D]}),
    ("NL-ERM", "VideoVanilla", {"paper": ["MODEL.BACKBONE.NAME", "nonlocal_resnet50", "INPUT.NUM_SEGMENTS", "32",
                                          *_I3D],
                                "small": ["MODEL.BACKBONE.NAME", "nonlocal_resnet_small", "INPUT.NUM_SEGMENTS", "8",
                                          *_I3D]}),
]

# The ViT frame encoders (models/backbones/timm_vit.py): the tiny ViT at the small preset, ViT-B/16 (random
# weights: the cost does not depend on them) at the paper preset, under TSN, APN and APN + ADA*.
_VIT = {"paper": ["MODEL.BACKBONE.NAME", "frame_vit_b16", "MODEL.BACKBONE.PARTIAL_BN", "False"],
        "small": ["MODEL.BACKBONE.NAME", "frame_vit_tiny"]}
VARIANTS += [
    (f"ViT-{name}", trainer, {preset: vit + overrides for preset, vit in _VIT.items()})
    for name, trainer, overrides in VARIANTS[:3]
]


# --cost: one line a row. name, trainer, config under configs/trainers/ for --preset paper and for --preset small,
# overrides. A row whose trainer is not registered on this branch is left out with a note.
COST_ROWS = [
    ("ERM (TSN)", "VideoVanilla", "VideoVanilla/r50_paper", "VideoVanilla/smallcnn_cpu", []),
    ("ERM (APN head)", "APN", "APN/r50_paper", "APN/smallcnn_cpu", ["TRAINER.APN.LEVELS", "none"]),
    ("APN + ADA* (paper)", "APN", "APN/r50_paper", "APN/smallcnn_cpu", []),
    ("APN + ADA* (paper, R0 after_update)", "APN", "APN/r50_paper", "APN/smallcnn_cpu",
     ["TRAINER.APN.R0", "after_update"]),
    ("APN + ADA* (official)", "APN", "APN/r50_official", "APN/smallcnn_official", []),
    ("TSN + ADA", "VideoADA", "VideoADA/r50_paper", "VideoADA/smallcnn_cpu", []),
    ("TRN + ADA", "VideoADA", "VideoADA/trn_r50_paper", "VideoADA/trn_cpu", []),
    ("TRN-ATTN + ADA", "VideoADA", "VideoADA/trn_attn_r50_paper", "VideoADA/trn_attn_cpu", []),
    ("TSM + ADA", "VideoADA", "VideoADA/tsm_r50_paper", "VideoADA/tsm_cpu", []),
    ("I3D + ADA", "VideoADA", "VideoADA/i3d_r50_paper", "VideoADA/i3d_cpu", []),
    ("Non-local + ADA", "VideoADA", "VideoADA/nonlocal_r50_paper", "VideoADA/nonlocal_cpu", []),
    ("Original ADA (TSN)", "OriginalADA", "OriginalADA/r50_paper", "OriginalADA/smallcnn_cpu", []),
    ("STDN", "STDN", "STDN/r50_paper", "STDN/smallcnn_cpu", []),
]
ERM_ROW, OFFICIAL_ROW, PAPER_ROW = "ERM (TSN)", "APN + ADA* (official)", "APN + ADA* (paper)"
# Algorithm 1's least passes and theta steps; the issue's FLOP and memory targets against the official reading
PAPER_GOAL = {"forward_passes": 13, "backward_passes": 13, "theta_steps": 3, "flops_vs_official": 0.75,
              "memory_vs_official": 0.5}


def build(args, trainer_name, overrides):
    argv = ["--root", args.root, "--dataset-config-file", "configs/datasets/synthetic_dg.yaml", "--source-domains",
            "studio", "--target-domains", "street", "--trainer", trainer_name, "--output-dir", args.output_dir,
            *PRESETS[args.preset], "DATALOADER.NUM_WORKERS", "0", "VERBOSE", "False",
            "TRAIN.BF16", str(args.bf16), "TRAIN.CHANNELS_LAST", str(args.channels_last),
            "TRAIN.COMPILE", str(args.compile),
            "USE_CUDA", str(args.device == "cuda"), *overrides]
    return build_trainer(train.setup_cfg(train.build_parser().parse_args(argv)))


def measure(trainer, steps: int, warmup: int):
    batch = next(iter(trainer.train_loader_x))
    batch = {k: v.to(trainer.device) if torch.is_tensor(v) else v for k, v in batch.items()}
    trainer.set_model_mode("train")
    trainer.batch_idx, trainer.num_batches = 0, steps + warmup + 1  # no LR step inside the timing
    cuda = trainer.device.type == "cuda"
    for i in range(warmup + steps):
        if i == warmup:
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
        trainer.forward_backward(batch)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    clips = batch["img"].shape[0] * steps
    peak = round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else "n/a (CPU)"
    return clips / seconds, seconds / steps, peak


def build_cost_row(args, trainer_name: str, config: str, overrides, batch_size: int):
    argv = ["--root", args.root, "--dataset-config-file", "configs/datasets/synthetic_dg.yaml", "--source-domains",
            "studio", "--target-domains", "street", "--trainer", trainer_name, "--output-dir", args.output_dir,
            "--config-file", f"configs/trainers/{config}.yaml", "MODEL.BACKBONE.PRETRAINED", "False",
            *(["INPUT.SIZE", "(224, 224)", "INPUT.TEST_SCALE_SIZE", "256"] if args.preset == "paper" else []),
            "DATALOADER.TRAIN_X.BATCH_SIZE", str(batch_size), "DATALOADER.NUM_WORKERS", "0", "VERBOSE", "False",
            "USE_CUDA", "False", *overrides, *args.opts]
    return build_trainer(train.setup_cfg(train.build_parser().parse_args(argv)))


def measure_cost(args, trainer_name: str, config: str, overrides) -> list:
    """step_cost of one row at each of args.batches (one trainer, the clips of one loader batch)."""
    trainer = build_cost_row(args, trainer_name, config, overrides, max(args.batches))
    batch = next(iter(trainer.train_loader_x))
    if args.device == "meta":
        move_trainer(trainer, META)
    results = []
    for B in args.batches:
        clips = {k: v[:B] if torch.is_tensor(v) else v for k, v in batch.items()}  # parse_batch_train moves it
        torch.manual_seed(0)
        with meta_log_values():
            cost = step_cost(trainer, clips, flops=True, saved_memory=True)
        cost.pop("losses")
        results.append(cost)
    return results


def slope(xs, ys):
    """Least-squares per-clip slope and intercept."""
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    k = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return k, my - k * mx


def cost_report(args) -> list:
    components.register_all()  # the registry, to tell which rows' trainers exist on this branch
    records = []
    for name, trainer_name, paper_config, small_config, overrides in COST_ROWS:
        if args.variants and name not in args.variants:
            continue
        if trainer_name not in TRAINER_REGISTRY.registered_names():
            print(f"{name}: trainer {trainer_name} is not on this branch; row left out", flush=True)
            continue
        config = paper_config if args.preset == "paper" else small_config
        for cost in measure_cost(args, trainer_name, config, overrides):
            records.append(dict(row=name, **cost))
        print(f"{name}: {records[-1]['forward_passes']} / {records[-1]['backward_passes']} / "
              f"{records[-1]['theta_steps']}, {records[-1]['gflops']:.4g} GFLOPs", flush=True)
    by = {(r["row"], r["batch_size"]): r for r in records}
    for r in records:  # ratios to ERM and to the official reading at the same batch
        for ref_name, tag in ((ERM_ROW, "erm"), (OFFICIAL_ROW, "official")):
            ref = by.get((ref_name, r["batch_size"]))
            r[f"flops_vs_{tag}"] = r["gflops"] / ref["gflops"] if ref else None
            r[f"memory_vs_{tag}"] = r["saved_peak_bytes"] / ref["saved_peak_bytes"] if ref else None
    ratio = lambda v: "" if v is None else f"{v:.2f}"  # noqa: E731
    rows = [[r["row"], r["batch_size"], r["forward_passes"], r["backward_passes"], r["theta_steps"],
             f"{r['gflops']:.4g}", f"{r['saved_peak_bytes'] / 2**30:.3g}", ratio(r["flops_vs_erm"]),
             ratio(r["flops_vs_official"]), ratio(r["memory_vs_erm"]), ratio(r["memory_vs_official"])]
            for r in records]
    print(f"\npreset={args.preset} device={args.device} batches={args.batches} (forward / backward: clip-batch "
          "passes through the frame encoder; saved: peak of the activations saved for backward)")
    print(tabulate(rows, headers=["step of", "B", "fwd", "bwd", "theta", "GFLOP", "saved GiB", "FLOP/ERM",
                                  "FLOP/official", "saved/ERM", "saved/official"], tablefmt="github"))
    if len(args.batches) > 1 and records:
        per_clip = []
        for name in dict.fromkeys(r["row"] for r in records):
            mine = [r for r in records if r["row"] == name]
            xs = [r["batch_size"] for r in mine]
            gf, gf0 = slope(xs, [r["gflops"] for r in mine])
            mem, mem0 = slope(xs, [r["saved_peak_bytes"] / 2**20 for r in mine])
            per_clip.append([name, f"{gf:.4g}", f"{gf0:.3g}", f"{mem:.4g}", f"{mem0:.3g}",
                             f"{(mem0 + 40 * mem) / 1024:.3g}"])
        print("\nPer clip (least-squares slope over the batches) and the constant part:")
        print(tabulate(per_clip, headers=["step of", "GFLOP/clip", "GFLOP const", "saved MiB/clip", "MiB const",
                                          "saved GiB at B=40"], tablefmt="github"))
    paper = by.get((PAPER_ROW, max(args.batches)))
    if paper and paper["flops_vs_official"] is not None and args.preset == "paper":
        goal = PAPER_GOAL
        print(f"\n{PAPER_ROW} against the goal (B={paper['batch_size']}): passes {paper['forward_passes']} / "
              f"{paper['backward_passes']} / {paper['theta_steps']} (at most {goal['forward_passes']} / "
              f"{goal['backward_passes']} / {goal['theta_steps']}); FLOPs {paper['flops_vs_official']:.0%} of the "
              f"official reading (at most {goal['flops_vs_official']:.0%}); saved activations "
              f"{paper['memory_vs_official']:.0%} of it (at most {goal['memory_vs_official']:.0%})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"preset": args.preset, "device": args.device, "rows": records}, f, indent=1)
    return records


def main(args) -> None:
    if args.cost:
        if args.device == "cuda":
            sys.exit("--cost counts on the CPU or on `meta` (the counts are those of a CUDA step); use --device "
                     "meta or cpu")
        cost_report(args)
        return
    if args.opts or args.device == "meta":
        sys.exit("KEY VALUE overrides and --device meta are for --cost only (throughput needs real tensors)")
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device here (use --device cpu --preset small)")
    torch.manual_seed(0)
    rows, records = [], []
    for name, trainer_name, overrides in VARIANTS:
        if args.variants and name not in args.variants:
            continue
        trainer = build(args, trainer_name, overrides[args.preset] if isinstance(overrides, dict) else overrides)
        clips_per_s, step_s, peak = measure(trainer, args.steps, args.warmup)
        rows.append([name, f"{clips_per_s:.2f}", f"{step_s:.3f}", peak])
        records.append({"variant": name, "clips_per_s": clips_per_s, "s_per_step": step_s, "peak_gib": peak})
        print(f"{name}: {clips_per_s:.2f} clips/s", flush=True)
        del trainer
        if args.device == "cuda":
            torch.cuda.empty_cache()
    device = torch.cuda.get_device_name(0) if args.device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"\npreset={args.preset} device={device} bf16={args.bf16} channels_last={args.channels_last} "
          f"compile={args.compile} steps={args.steps} (after {args.warmup} warm-up)")
    print(tabulate(rows, headers=["variant", "clips/s", "s/step", "peak GiB"], tablefmt="github"))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"preset": args.preset, "device": device, "bf16": args.bf16, "channels_last": args.channels_last,
                       "compile": args.compile, "steps": args.steps, "warmup": args.warmup, "rows": records}, f,
                      indent=1)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Training-step throughput of TSN-ERM, APN-ERM and APN+ADA*")
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None,
                        help="default: paper with --cost, else small")
    parser.add_argument("--device", choices=["cpu", "cuda", "meta"], default=None,
                        help="default: cuda if available, else cpu; meta for --cost")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--bf16", action="store_true", help="TRAIN.BF16: bf16 autocast")
    parser.add_argument("--channels-last", action="store_true", help="TRAIN.CHANNELS_LAST: channels_last frame encoder")
    parser.add_argument("--compile", action="store_true", help="TRAIN.COMPILE: torch.compile the encoder and head "
                        "(give --warmup enough steps to compile every pass of a step)")
    parser.add_argument("--variants", nargs="*", help=f"only these (default all): {[v[0] for v in VARIANTS]}")
    parser.add_argument("--root", default="data", help="where the synthetic benchmark is (or is generated)")
    parser.add_argument("--output-dir", default="output/benchmark")
    parser.add_argument("--cost", action="store_true", help="passes, theta steps, GFLOPs and saved activations "
                        "per step (COST_ROWS) instead of throughput")
    parser.add_argument("--batches", type=int, nargs="+", default=[40], help="--cost: batch sizes to measure")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="--cost: KEY VALUE config overrides for every row")
    return parser


def resolve(args) -> argparse.Namespace:
    """The defaults that depend on other options."""
    if args.device is None:
        args.device = "meta" if args.cost else "cuda" if torch.cuda.is_available() else "cpu"
    if args.preset is None:
        args.preset = "paper" if args.cost else "small"
    return args


if __name__ == "__main__":
    main(resolve(build_parser().parse_args()))
