"""The one module through which the project reaches Dassl's API.

It uses real Dassl (https://github.com/KaiyangZhou/Dassl.pytorch) when `import dassl` works and otherwise
the built-in engine in framework/builtin, which has the same names, signatures, config keys, CLI semantics
and checkpoint layout. Set VIDEODG_ENGINE to choose:

    VIDEODG_ENGINE=auto     (default) real Dassl if importable, else the built-in engine
    VIDEODG_ENGINE=builtin  always the built-in engine
    VIDEODG_ENGINE=dassl    real Dassl; fail with the install recipe if it cannot be imported

Whatever the engine, these pieces always come from framework/builtin because Dassl 0.6.3 breaks on
current PyTorch or is unsafe there (see CheckpointMixin): checkpoint save/load/resume (atomic writes,
weights_only loads, `--load-epoch` works, exact resume, best-epoch tie-break), build_lr_scheduler (Dassl's
warmup raises TypeError on torch >= 2.7), build_optimizer (same keys; adds OPTIM.IMPLEMENTATION, the
foreach/fused kernel choice), and setup_logger (Dassl's stdout tee closes the stream it wraps when it is closed or
garbage-collected, so a second run in one process, e.g. train.main() under pytest, loses stdout); TrainerX's
epoch loop also is the built-in one (see TrainerX below). Nothing of Dassl's modules is changed, and nothing else
in the project imports dassl.
"""
import importlib.util
import logging
import os

ENGINE_ENV = "VIDEODG_ENGINE"
_choice = os.environ.get(ENGINE_ENV, "auto").strip().lower()
if _choice not in ("auto", "builtin", "dassl"):
    raise ValueError(f"{ENGINE_ENV}={_choice!r} is not valid: use auto, builtin or dassl")


def _import_dassl():
    """Import real Dassl, or return the reason it cannot be used."""
    try:
        import dassl.engine  # noqa: F401  (registers Dassl's trainers and datasets)
    except Exception as e:  # Dassl also fails to import when its `wilds` dependency is missing
        return f"{type(e).__name__}: {e}"
    # Dassl switches logging off below ERROR at import; give the process its warnings back.
    logging.disable(logging.NOTSET)
    return None


_reason = "VIDEODG_ENGINE=builtin" if _choice == "builtin" else _import_dassl()
if _reason is not None and _choice == "dassl":
    raise ImportError(f"VIDEODG_ENGINE=dassl but Dassl cannot be imported ({_reason}). Install it from source "
                      "as docs/engines.md ('Running on real Dassl') shows, or unset VIDEODG_ENGINE.")
if _reason is not None and _choice == "auto" and importlib.util.find_spec("dassl") is not None:
    print(f"Note: Dassl is installed but cannot be imported ({_reason}); using the built-in engine.")

if _reason is None:
    ENGINE = "dassl"
    from dassl.config import clean_cfg as _engine_clean_cfg
    from dassl.config import get_cfg_default
    from dassl.data import DataManager, DatasetWrapper
    from dassl.data.data_manager import build_data_loader
    from dassl.data.datasets import DATASET_REGISTRY, DatasetBase, Datum, build_dataset
    from dassl.engine import TRAINER_REGISTRY, build_trainer
    from dassl.engine.trainer import SimpleNet, SimpleTrainer, TrainerBase
    from dassl.engine.trainer import TrainerX as _DasslTrainerX
    from dassl.evaluation import EVALUATOR_REGISTRY, build_evaluator
    from dassl.modeling import (BACKBONE_REGISTRY, HEAD_REGISTRY, NETWORK_REGISTRY, Backbone, build_backbone,
                                build_head, build_network)
    from dassl.utils import (AverageMeter, MetricMeter, Registry, collect_env_info, count_num_param,
                             load_pretrained_weights, mkdir_if_missing, set_random_seed)

    from .builtin.checkpointing import CheckpointMixin
    from .builtin.trainer import TrainerX as _BuiltinTrainerX

    class TrainerX(CheckpointMixin, _DasslTrainerX):
        """Dassl's TrainerX with the checkpoint fixes, exact resume and best-epoch tie-break of CheckpointMixin,
        and the built-in engine's epoch loop. That loop prints Dassl's batch line, field for field, but writes
        a value below 1e-3 in exponent form, where Dassl's four decimals print a transport cost of 3e-6 as
        0.0000. It uses only Dassl's trainer API, so it runs unchanged on Dassl's TrainerX; Dassl's own module
        is left as it is (Dassl's trainers, e.g. CrossGrad, keep its format)."""
        run_epoch = _BuiltinTrainerX.run_epoch
        _print_due = _BuiltinTrainerX._print_due
        _eta = _BuiltinTrainerX._eta
        _progress = _BuiltinTrainerX._progress
        _scalars = _BuiltinTrainerX._scalars

else:
    ENGINE = "builtin"
    from .builtin.checkpointing import CheckpointMixin
    from .builtin.config import clean_cfg as _engine_clean_cfg
    from .builtin.config import get_cfg_default
    from .builtin.data import (DATASET_REGISTRY, DataManager, DatasetBase, DatasetWrapper, Datum, build_data_loader,
                               build_dataset)
    from .builtin.evaluation import EVALUATOR_REGISTRY, build_evaluator
    from .builtin.modeling import (BACKBONE_REGISTRY, HEAD_REGISTRY, NETWORK_REGISTRY, Backbone, SimpleNet,
                                   build_backbone, build_head, build_network)
    from .builtin.registry import Registry
    from .builtin.trainer import TRAINER_REGISTRY, SimpleTrainer, TrainerBase, TrainerX, build_trainer
    from .builtin.utils import (AverageMeter, MetricMeter, collect_env_info, count_num_param,
                                load_pretrained_weights, mkdir_if_missing, set_random_seed)

# Always the built-in versions (see the module docstring).
from .builtin.optim import build_lr_scheduler, build_optimizer  # noqa: E402
from .builtin.registry import check_availability  # noqa: E402
from .builtin.runlock import OutputDirInUse, claim_output_dir, lock_holder  # noqa: E402
from .builtin.selection import EVALUATION_HEADER  # noqa: E402
from .builtin.utils import (CheckpointError, load_checkpoint, read_json, save_checkpoint,  # noqa: E402
                            setup_logger, write_json)


def clean_cfg(cfg, trainer: str) -> None:
    """The engine's clean_cfg: keep TRAINER.NAME and TRAINER.<trainer.upper()>, the node of every trainer of this
    project, and drop the other trainer nodes. A Dassl* adapter (trainers/dassl_dg.py) runs Dassl's code, which
    reads Dassl's node, named by the adapter's class attribute `dassl_node` (CROSSGRAD for DasslCrossGrad); that
    node is kept too."""
    node = None
    if trainer in TRAINER_REGISTRY.registered_names():
        node = getattr(TRAINER_REGISTRY.get(trainer), "dassl_node", None)
    kept = cfg.TRAINER[node] if node and node in cfg.TRAINER else None
    _engine_clean_cfg(cfg, trainer)
    if kept is not None:
        cfg.TRAINER[node] = kept


__all__ = [
    "ENGINE", "ENGINE_ENV", "get_cfg_default", "clean_cfg", "Registry", "check_availability",
    "TRAINER_REGISTRY", "build_trainer", "TrainerBase", "SimpleTrainer", "TrainerX", "SimpleNet",
    "CheckpointMixin", "DATASET_REGISTRY", "build_dataset", "Datum",
    "DatasetBase", "DataManager", "build_data_loader",
    "DatasetWrapper", "BACKBONE_REGISTRY", "Backbone", "build_backbone", "HEAD_REGISTRY", "build_head",
    "NETWORK_REGISTRY", "build_network", "EVALUATOR_REGISTRY", "build_evaluator", "build_optimizer",
    "build_lr_scheduler", "setup_logger", "set_random_seed", "collect_env_info", "AverageMeter",
    "MetricMeter", "mkdir_if_missing", "count_num_param", "load_pretrained_weights", "load_checkpoint",
    "save_checkpoint", "read_json", "write_json", "CheckpointError",
    "OutputDirInUse", "claim_output_dir", "lock_holder", "EVALUATION_HEADER",
]
