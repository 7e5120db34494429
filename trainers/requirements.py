"""What a method needs from a run, declared by the method and checked before anything is written to OUTPUT_DIR.

A trainer declares its needs in one place, the classmethod `requirements(cfg)` (the base returns
`Requirements()`: one source domain, any sampler):

    @classmethod
    def requirements(cls, cfg) -> Requirements:
        return Requirements(source_domains=2, why="its domain classifier needs two domains to tell apart")

train.py checks them (trainers/checks.py) before the output folder is touched, and the trainer's check_cfg
checks them again for runs built without train.py (ensemble.py, tests).
"""
from typing import List, NamedTuple, Optional

from defaults import extend_cfg
from framework import TRAINER_REGISTRY, get_cfg_default


class Requirements(NamedTuple):
    source_domains: int = 1  # at least this many source domains (DATASET.SOURCE_DOMAINS)
    sampler: Optional[str] = None  # the DATALOADER.TRAIN_X.SAMPLER the method needs; None: any
    why: str = ""  # a clause for the error message: why the method needs this


def check_requirements(trainer_cls: type, cfg) -> None:
    """Raise ValueError saying what to change when the run `cfg` lacks what the trainer's requirements(cfg) ask."""
    needs, name = trainer_cls.requirements(cfg), cfg.TRAINER.NAME
    why = f" ({needs.why})" if needs.why else ""
    errors = []
    have = list(cfg.DATASET.SOURCE_DOMAINS)
    if len(have) < needs.source_domains:
        errors.append(
            f"{name} needs at least {needs.source_domains} source domains{why}, but the run has {len(have)}: "
            f"{have}. Name more with --source-domains (e.g. the leave-one-domain-out protocol: bash "
            f"scripts/paper_tasks.sh BENCHMARK:lodo ...), or pick a method that runs on one source domain: "
            f"{', '.join(single_source_methods())}.")
    sampler = cfg.DATALOADER.TRAIN_X.SAMPLER
    if needs.sampler is not None and sampler != needs.sampler:
        errors.append(f"{name} needs DATALOADER.TRAIN_X.SAMPLER {needs.sampler}{why}, but the run has {sampler}: "
                      "set it on the command line or in the method's YAML.")
    if errors:
        raise ValueError(" ".join(errors))


def single_source_methods() -> List[str]:
    """The registered video trainers whose default settings run on one source domain."""
    defaults = get_cfg_default()
    extend_cfg(defaults)
    trainers = {name: TRAINER_REGISTRY.get(name) for name in TRAINER_REGISTRY.registered_names()}
    return sorted(name for name, cls in trainers.items()
                  if hasattr(cls, "requirements") and cls.requirements(defaults).source_domains <= 1)
