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
"""
import argparse
import os
import sys
import time

import torch
from tabulate import tabulate

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import train  # noqa: E402  (the command line and config assembly of a run)
from framework import build_trainer  # noqa: E402

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


def build(args, trainer_name, overrides):
    argv = ["--root", args.root, "--dataset-config-file", "configs/datasets/synthetic_dg.yaml", "--source-domains",
            "studio", "--target-domains", "street", "--trainer", trainer_name, "--output-dir", args.output_dir,
            *PRESETS[args.preset], "DATALOADER.NUM_WORKERS", "0", "VERBOSE", "False",
            "TRAIN.BF16", str(args.bf16), "TRAIN.CHANNELS_LAST", str(args.channels_last),
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
    peak = f"{torch.cuda.max_memory_allocated() / 2**30:.2f}" if cuda else "n/a (CPU)"
    return clips / seconds, seconds / steps, peak


def main(args) -> None:
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device here (use --device cpu --preset small)")
    torch.manual_seed(0)
    rows = []
    for name, trainer_name, overrides in VARIANTS:
        if args.variants and name not in args.variants:
            continue
        trainer = build(args, trainer_name, overrides[args.preset] if isinstance(overrides, dict) else overrides)
        clips_per_s, step_s, peak = measure(trainer, args.steps, args.warmup)
        rows.append([name, f"{clips_per_s:.2f}", f"{step_s:.3f}", peak])
        print(f"{name}: {clips_per_s:.2f} clips/s", flush=True)
        del trainer
        if args.device == "cuda":
            torch.cuda.empty_cache()
    device = torch.cuda.get_device_name(0) if args.device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"\npreset={args.preset} device={device} bf16={args.bf16} channels_last={args.channels_last} "
          f"steps={args.steps} (after {args.warmup} warm-up)")
    print(tabulate(rows, headers=["variant", "clips/s", "s/step", "peak GiB"], tablefmt="github"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Training-step throughput of TSN-ERM, APN-ERM and APN+ADA*")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="small")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--bf16", action="store_true", help="TRAIN.BF16: bf16 autocast")
    parser.add_argument("--channels-last", action="store_true", help="TRAIN.CHANNELS_LAST: channels_last frame encoder")
    parser.add_argument("--variants", nargs="*", help=f"only these (default all): {[v[0] for v in VARIANTS]}")
    parser.add_argument("--root", default="data", help="where the synthetic benchmark is (or is generated)")
    parser.add_argument("--output-dir", default="output/benchmark")
    main(parser.parse_args())
