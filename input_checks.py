"""train.py's checks of its command line and of settings that cannot run, made before anything is written.

Each refusal is a SystemExit whose message names the flag or key and says what to write instead, so a
mistyped folder or a zero in a YAML file costs seconds, not a half-written run folder.
"""
import glob
import os.path as osp
from typing import List

from datasets.base import check_val_ratio


def is_config_key(cfg, token: str) -> bool:
    """Whether `token` names a key of the config (OPTIM.MAX_EPOCH, DATASET.VAL_RATIO, ...)."""
    node = cfg
    for part in token.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return "." in token


def move_pairs_out_of_domain_lists(args, cfg) -> None:
    """KEY VALUE pairs written right after --source-domains or --target-domains are swallowed by those flags
    (argparse cannot tell a domain from a pair); a config key is never a domain name, so everything from the
    first key on goes back to the pairs, in the order written."""
    moved: List[str] = []
    for flag in ("source_domains", "target_domains"):
        names = getattr(args, flag) or []
        first_key = next((i for i, name in enumerate(names) if is_config_key(cfg, name)), None)
        if first_key is not None:
            moved += names[first_key:]
            setattr(args, flag, names[:first_key])
    if moved:
        args.opts = moved + list(args.opts or [])


def check_run_inputs(args, cfg) -> None:
    """Refuse settings that would fail late or write a run folder for nothing."""
    try:
        check_val_ratio(cfg.DATASET.VAL_RATIO)
    except ValueError as e:
        raise SystemExit(str(e)) from None
    training = not (args.eval_only or args.no_train)
    if training and cfg.OPTIM.MAX_EPOCH < 1:
        raise SystemExit(f"OPTIM.MAX_EPOCH is {cfg.OPTIM.MAX_EPOCH}: a run trains for at least 1 epoch. Set it to "
                         "1 or more (to evaluate a trained run, use --eval-only --model-dir RUN).")
    for loader in (["TRAIN_X"] if training else []) + ["TEST"]:
        value = cfg.DATALOADER[loader].BATCH_SIZE
        if value < 1:
            raise SystemExit(f"DATALOADER.{loader}.BATCH_SIZE is {value}: a batch holds at least 1 clip. Set it to "
                             "1 or more.")
    if args.eval_only and args.model_dir:
        check_model_dir(args.model_dir, args.load_epoch)


def check_model_dir(model_dir: str, epoch) -> None:
    """--eval-only needs the checkpoint it will load; say so before the evaluation folder is made."""
    wanted = "model-best.pth.tar" if epoch is None else f"model.pth.tar-{epoch}"
    if glob.glob(osp.join(glob.escape(model_dir), "*", wanted)):
        return
    kept = sorted(osp.relpath(path, model_dir) for pattern in ("model-best.pth.tar", "model.pth.tar-*")
                  for path in glob.glob(osp.join(glob.escape(model_dir), "*", pattern)))
    fix = ("Pass --model-dir the OUTPUT_DIR of a training run: it holds model/model-best.pth.tar (with "
           "TEST.FINAL_MODEL best_val) and model/model.pth.tar-N.")
    if not osp.isdir(model_dir):
        raise SystemExit(f'--model-dir "{model_dir}" does not exist, so it holds no checkpoint. {fix}')
    if not kept:
        raise SystemExit(f'--model-dir "{model_dir}" holds no checkpoint. {fix}')
    raise SystemExit(f'--model-dir "{model_dir}" has no */{wanted}; it holds {", ".join(kept)}. Pass --load-epoch N '
                     "for one of the regular checkpoints, or omit it for model-best.pth.tar.")
