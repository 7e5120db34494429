"""Train or evaluate a video DG method: Dassl's tools/train.py command line for this plugin.

    python train.py --root data --trainer APN --source-domains studio --target-domains street sketch glimpse \
        --dataset-config-file configs/datasets/synthetic_dg.yaml --config-file configs/trainers/APN/smallcnn_cpu.yaml \
        --output-dir output/synthetic/APN/seed1 --seed 1 [KEY VALUE ...]
    torchrun --nproc_per_node N train.py ...   (data parallel on N processes: docs/multi_gpu.md)

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
    """Dassl's defaults plus the project's keys, after registering every component."""
    import components
    from defaults import extend_cfg
    from framework import get_cfg_default

    components.register_all()
    cfg = get_cfg_default()
    extend_cfg(cfg)
    return cfg


def setup_cfg(args):
    from defaults import merge_config_file
    from framework import clean_cfg
    from input_checks import move_pairs_out_of_domain_lists

    cfg = default_cfg()
    move_pairs_out_of_domain_lists(args, cfg)  # `--target-domains a b KEY VALUE`: the pairs are pairs
    saved = osp.join(args.model_dir, "config.yaml") if args.eval_only and args.model_dir else ""
    if saved and osp.isfile(saved):  # --eval-only starts from the evaluated run's own config
        merge_config_file(cfg, saved)
    for path in (args.dataset_config_file, args.config_file):
        if path:
            merge_config_file(cfg, path)
    reset_cfg(cfg, args)
    check_opts(args.opts)
    cfg.merge_from_list(args.opts)
    clean_cfg(cfg, cfg.TRAINER.NAME)
    if args.eval_only and args.model_dir:
        cfg.OUTPUT_DIR = eval_output_dir(args, cfg.TEST.SPLIT)
    cfg.freeze()
    return cfg


def check_opts(opts) -> None:
    """Flags must come before the KEY VALUE pairs: argparse hands everything after the first pair to opts."""
    flags = [o for o in opts or [] if isinstance(o, str) and o.startswith("--")]
    if flags:
        raise SystemExit(f"{flags[0]} stands after the KEY VALUE pairs, where it would be read as a config key. "
                         f"Put every flag ({', '.join(flags)}) before the first KEY VALUE pair.")


def eval_output_dir(args, split: str) -> str:
    """--eval-only writes into a folder of its own: --output-dir when it names another folder, else
    RUN/eval/<split>-<best|epochN>/, so the run's results, config and log are never overwritten."""
    run = osp.normpath(args.model_dir)
    if args.output_dir and osp.normpath(args.output_dir) != run:
        return args.output_dir
    which = "best" if args.load_epoch is None else f"epoch{args.load_epoch}"
    return osp.join(run, "eval", f"{split}-{which}")


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
    from framework.distributed import get_rank, init_from_env, is_main_process, quiet_unless_main, shutdown

    cfg = setup_cfg(args)
    # torchrun (docs/multi_gpu.md): join the process group; rank 0 alone prints, logs and writes files
    init_from_env(cfg.USE_CUDA)
    quiet_unless_main()
    try:
        run(args, cfg, is_main_process(), get_rank())
    finally:
        shutdown()


def run(args, cfg, main_process: bool = True, rank: int = 0) -> None:
    import torch

    from framework import ENGINE, build_trainer, collect_env_info, mkdir_if_missing, set_random_seed, setup_logger
    from framework import OutputDirInUse, claim_output_dir

    from input_checks import check_run_inputs
    from trainers.checks import check_run_config
    check_run_config(cfg)  # a wrong trainer/data pairing stops here, before OUTPUT_DIR is touched
    check_run_inputs(args, cfg)  # and so do settings that cannot train and --eval-only without a checkpoint
    if cfg.SEED >= 0:
        print(f"Random seed: {cfg.SEED + rank}")
        set_random_seed(cfg.SEED + rank)  # one seed per rank; the model starts from rank 0's weights
    if main_process:
        try:
            lock_notes = claim_output_dir(cfg.OUTPUT_DIR)  # one run per output folder (rank 0 holds it)
        except OutputDirInUse as e:
            raise SystemExit(str(e)) from None
        setup_logger(cfg.OUTPUT_DIR)
        for note in lock_notes:  # a taken-over stale lock, temporary files of killed saves
            print(note)
    if torch.cuda.is_available() and cfg.USE_CUDA:
        torch.backends.cudnn.benchmark = True
    print_args(args, cfg)
    print(f"Engine: {ENGINE}")
    print("** System info **\n" + collect_env_info() + "\n")
    if main_process:
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
