"""Train or evaluate a video DG method: Dassl's tools/train.py command line for this plugin.

    python train.py --root data --trainer APN --source-domains studio --target-domains street sketch glimpse \
        --dataset-config-file configs/datasets/synthetic_dg.yaml --config-file configs/trainers/APN/smallcnn_cpu.yaml \
        --output-dir output/synthetic/APN/seed1 --seed 1 [KEY VALUE ...]

Config order: Dassl defaults, extend_cfg (defaults.py and each component's own keys), dataset YAML, trainer
YAML (each with its `_BASE_` files first), flags, trailing KEY VALUE pairs; later wins. The merged config is
saved as OUTPUT_DIR/config.yaml; the log shows only the keys that differ from the defaults. Two deliberate differences from Dassl 0.6.3's script: `--seed` overrides SEED only when
given (Dassl's default of -1 silently overwrote a SEED from YAML, and ignored --seed 0), and the trainer
node kept by clean_cfg is the one of TRAINER.NAME wherever it was set (Dassl used only the --trainer flag).
"""
import argparse
import os.path as osp
from typing import Iterator, Tuple

# torch, Dassl and the components are imported inside the functions that need them, so that `--help`
# answers at once.


def reset_cfg(cfg, args) -> None:
    if args.root:
        cfg.DATASET.ROOT = args.root
    if args.output_dir:
        cfg.OUTPUT_DIR = args.output_dir
    if args.resume:
        cfg.RESUME = args.resume
    if args.seed is not None:
        cfg.SEED = args.seed
    if args.source_domains:
        cfg.DATASET.SOURCE_DOMAINS = args.source_domains
    if args.target_domains:
        cfg.DATASET.TARGET_DOMAINS = args.target_domains
    if args.transforms:
        cfg.INPUT.TRANSFORMS = args.transforms
    if args.trainer:
        cfg.TRAINER.NAME = args.trainer
    if args.backbone:
        cfg.MODEL.BACKBONE.NAME = args.backbone
    if args.head:
        cfg.MODEL.HEAD.NAME = args.head
    if args.no_figures:
        cfg.TEST.FIGURES = False


def default_cfg():
    """Dassl's defaults plus the project's keys (registers every component on the way)."""
    from defaults import extend_cfg
    from framework import get_cfg_default

    cfg = get_cfg_default()
    extend_cfg(cfg)
    return cfg


def setup_cfg(args):
    from defaults import merge_config_file
    from framework import clean_cfg

    cfg = default_cfg()
    for path in (args.dataset_config_file, args.config_file):
        if path:
            merge_config_file(cfg, path)
    reset_cfg(cfg, args)
    cfg.merge_from_list(args.opts)
    clean_cfg(cfg, cfg.TRAINER.NAME)
    cfg.freeze()
    return cfg


def changed_keys(cfg, reference, prefix: str = "") -> Iterator[Tuple[str, object]]:
    """(KEY.PATH, value) for every leaf of cfg that is new or differs from reference."""
    for key, value in cfg.items():
        path = prefix + key
        if isinstance(value, dict):
            yield from changed_keys(value, reference.get(key, {}) if isinstance(reference, dict) else {},
                                    path + ".")
        elif not isinstance(reference, dict) or key not in reference or reference[key] != value:
            yield path, value


def print_args(args, cfg) -> None:
    print("** Arguments **")
    for key in sorted(vars(args)):
        print(f"{key}: {getattr(args, key)}")
    print("** Config: the keys that differ from the defaults (all keys: OUTPUT_DIR/config.yaml) **")
    for path, value in changed_keys(cfg, default_cfg()):
        print(f"{path}: {value}")


def main(args) -> None:
    import torch

    from framework import ENGINE, build_trainer, collect_env_info, mkdir_if_missing, set_random_seed, setup_logger

    cfg = setup_cfg(args)
    if cfg.SEED >= 0:
        print(f"Setting fixed seed: {cfg.SEED}")
        set_random_seed(cfg.SEED)
    setup_logger(cfg.OUTPUT_DIR)
    if torch.cuda.is_available() and cfg.USE_CUDA:
        torch.backends.cudnn.benchmark = True
    print_args(args, cfg)
    print(f"Engine: {ENGINE}")
    print("Collecting env info ...")
    print("** System info **\n" + collect_env_info() + "\n")
    mkdir_if_missing(cfg.OUTPUT_DIR)
    with open(osp.join(cfg.OUTPUT_DIR, "config.yaml"), "w") as f:
        f.write(cfg.dump())  # read back by ensemble.py to rebuild this run's model and data

    trainer = build_trainer(cfg)
    if args.eval_only:
        trainer.load_model(args.model_dir, epoch=args.load_epoch)
        trainer.test()
        return
    if not args.no_train:
        trainer.train()


def components_epilog() -> str:
    from components import list_components

    lines = ["registered components (one file each; a new file under trainers/, models/ or datasets/ joins "
             "these lists by itself):"]
    for kind, names in list_components().items():
        lines.append(f"  {kind + ':':11s} " + ", ".join(names))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=components_epilog(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=str, default="", help="path to the datasets (DATASET.ROOT)")
    parser.add_argument("--output-dir", type=str, default="", help="output directory (OUTPUT_DIR)")
    parser.add_argument("--resume", type=str, default="", help="checkpoint directory to resume from (RESUME)")
    parser.add_argument("--seed", type=int, default=None, help="random seed; >= 0 fixes it (SEED)")
    parser.add_argument("--source-domains", type=str, nargs="+", help="source domains (DG)")
    parser.add_argument("--target-domains", type=str, nargs="+", help="target domains (DG)")
    parser.add_argument("--transforms", type=str, nargs="+", help="INPUT.TRANSFORMS (image trainers only)")
    parser.add_argument("--config-file", type=str, default="", help="trainer/method config YAML")
    parser.add_argument("--dataset-config-file", type=str, default="", help="dataset config YAML")
    parser.add_argument("--trainer", type=str, default="", help="trainer name (TRAINER.NAME)")
    parser.add_argument("--backbone", type=str, default="", help="frame encoder (MODEL.BACKBONE.NAME)")
    parser.add_argument("--head", type=str, default="", help="temporal head (MODEL.HEAD.NAME)")
    parser.add_argument("--eval-only", action="store_true", help="evaluate only")
    parser.add_argument("--model-dir", type=str, default="", help="load the model from this training run")
    parser.add_argument("--load-epoch", type=int, help="load model.pth.tar-N (default: model-best.pth.tar)")
    parser.add_argument("--no-train", action="store_true", help="build the trainer, then stop")
    parser.add_argument("--no-figures", action="store_true", help="no figures in OUTPUT_DIR/figures (TEST.FIGURES False)")
    parser.add_argument("opts", default=None, nargs=argparse.REMAINDER, help="KEY VALUE pairs that override the config")
    return parser


if __name__ == "__main__":
    main(build_parser().parse_args())
