"""The built-in engine: config keys and yacs rules, registries, optimiser/scheduler, checkpoints, resume."""
import os

import pytest
import torch
import torch.nn as nn

from framework.builtin.checkpointing import CheckpointMixin
from framework.builtin.config import clean_cfg, get_cfg_default
from framework.builtin.optim import build_lr_scheduler, build_optimizer
from framework.builtin.registry import Registry, check_availability
from framework.builtin.trainer import TrainerBase
from framework.builtin.utils import load_checkpoint


def test_defaults_match_dassl():
    cfg = get_cfg_default()
    assert cfg.OUTPUT_DIR == "./output" and cfg.SEED == -1 and cfg.USE_CUDA is True
    assert cfg.INPUT.SIZE == (224, 224) and cfg.INPUT.PIXEL_MEAN == [0.485, 0.456, 0.406]
    assert cfg.DATALOADER.NUM_WORKERS == 4 and cfg.DATALOADER.TRAIN_X.BATCH_SIZE == 32
    assert cfg.MODEL.BACKBONE.PRETRAINED is True and cfg.MODEL.HEAD.HIDDEN_LAYERS == ()
    assert cfg.OPTIM.NAME == "adam" and cfg.OPTIM.LR == 0.0003 and cfg.OPTIM.SGD_DAMPNING == 0
    assert cfg.OPTIM.STEPSIZE == (-1, ) and cfg.OPTIM.WARMUP_EPOCH == -1
    assert cfg.TEST.FINAL_MODEL == "last_step" and cfg.TEST.EVALUATOR == "Classification"
    assert set(cfg.TRAINER.keys()) == {"NAME", "CROSSGRAD", "DDAIG", "DAELDG", "DOMAINMIX"}
    # a clone: changing one copy leaves the defaults alone
    cfg.OPTIM.LR = 1.0
    assert get_cfg_default().OPTIM.LR == 0.0003


def test_yacs_rules_hold():
    cfg = get_cfg_default()
    with pytest.raises(AssertionError):
        cfg.merge_from_list(["OPTIM.NOT_A_KEY", "1"])
    with pytest.raises(ValueError):
        cfg.merge_from_list(["OPTIM.LR", "1"])  # int where the default is a float
    cfg.merge_from_list(["OPTIM.LR", "1e-3", "OPTIM.STEPSIZE", "[30]"])
    assert cfg.OPTIM.LR == 1e-3 and cfg.OPTIM.STEPSIZE == (30, )  # list -> tuple like the default
    cfg.freeze()
    with pytest.raises(AttributeError):
        cfg.OPTIM.LR = 0.1


def test_clean_cfg_keeps_only_the_named_trainer_node():
    cfg = get_cfg_default()
    clean_cfg(cfg, "CrossGrad")
    assert set(cfg.TRAINER.keys()) == {"NAME", "CROSSGRAD"}


def test_registry_registers_by_class_name_and_rejects_duplicates():
    reg = Registry("THING")

    @reg.register()
    class Alpha:
        pass

    assert reg.get("Alpha") is Alpha and reg.registered_names() == ["Alpha"]
    with pytest.raises(KeyError, match="already registered"):
        reg.register(Alpha)
    reg.register(Alpha, force=True)
    with pytest.raises(KeyError, match="does not exist"):
        reg.get("Beta")


def test_check_availability_lists_valid_names_and_closest():
    with pytest.raises(ValueError) as e:
        check_availability("APM", ["APN", "VideoVanilla"])
    assert "APN" in str(e.value) and "VideoVanilla" in str(e.value) and 'Did you mean "APN"' in str(e.value)


def _optim_cfg(**overrides):
    cfg = get_cfg_default()
    for k, v in overrides.items():
        setattr(cfg.OPTIM, k, v)
    return cfg.OPTIM


def _lrs(sched, optim, epochs):
    lrs = []
    for _ in range(epochs):
        lrs.append(optim.param_groups[0]["lr"])
        optim.step()
        sched.step()
    return lrs


def test_single_step_scheduler_decays_every_stepsize_epochs():
    model = nn.Linear(2, 2)
    ocfg = _optim_cfg(NAME="sgd", LR=0.1, STEPSIZE=(2, ), MAX_EPOCH=6)
    optim = build_optimizer(model, ocfg)
    lrs = _lrs(build_lr_scheduler(optim, ocfg), optim, 6)
    assert lrs == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_linear_warmup_then_successor():
    model = nn.Linear(2, 2)
    ocfg = _optim_cfg(NAME="sgd", LR=0.1, WARMUP_EPOCH=2, WARMUP_MIN_LR=0.001, LR_SCHEDULER="single_step",
                      STEPSIZE=(2, ), MAX_EPOCH=6)
    optim = build_optimizer(model, ocfg)
    sched = build_lr_scheduler(optim, ocfg)
    lrs = _lrs(sched, optim, 6)
    assert lrs == pytest.approx([0.001, 0.05, 0.1, 0.1, 0.01, 0.01])
    # the state round-trips, including the successor's
    state = sched.state_dict()
    optim2 = build_optimizer(nn.Linear(2, 2), ocfg)
    sched2 = build_lr_scheduler(optim2, ocfg)
    sched2.load_state_dict(state)
    for o, s in ((optim, sched), (optim2, sched2)):
        o.step()
        s.step()
    assert sched2.get_last_lr() == pytest.approx(sched.get_last_lr())


def test_staged_lr_gives_new_layers_the_full_lr():
    model = nn.Sequential()
    model.add_module("backbone", nn.Linear(2, 2))
    model.add_module("classifier", nn.Linear(2, 2))
    optim = build_optimizer(model, _optim_cfg(NAME="sgd", LR=0.1, STAGED_LR=True, NEW_LAYERS=("classifier", )))
    assert [g["lr"] for g in optim.param_groups] == pytest.approx([0.01, 0.1])


class _TinyTrainer(TrainerBase):
    """Just a model registry, to exercise CheckpointMixin."""

    def __init__(self, lr=0.1):
        super().__init__()
        self.model = nn.Linear(3, 2)
        ocfg = _optim_cfg(NAME="sgd", LR=lr, STEPSIZE=(1, ), MAX_EPOCH=5)
        self.optim = build_optimizer(self.model, ocfg)
        self.sched = build_lr_scheduler(self.optim, ocfg)
        self.register_model("model", self.model, self.optim, self.sched)
        self.best_result = -1.0


def test_checkpoint_layout_and_round_trip(tmp_path):
    t = _TinyTrainer()
    t.optim.step()
    t.sched.step()
    t.save_model(0, str(tmp_path))
    t.save_model(0, str(tmp_path), val_result=55.5, model_name="model-best.pth.tar")
    t.save_model(1, str(tmp_path))
    folder = tmp_path / "model"
    assert sorted(os.listdir(folder)) == ["checkpoint", "model-best.pth.tar", "model.pth.tar-1", "model.pth.tar-2"]
    assert (folder / "checkpoint").read_text().strip() == "model.pth.tar-2"  # best does not move the pointer
    ckpt = load_checkpoint(str(folder / "model.pth.tar-2"))
    assert set(ckpt) == {"state_dict", "epoch", "optimizer", "scheduler", "val_result"}
    assert ckpt["epoch"] == 2 and ckpt["val_result"] is None
    assert not any(name.endswith(".tmp") or ".tmp-" in name for name in os.listdir(folder))

    fresh = _TinyTrainer()
    fresh.load_model(str(tmp_path), epoch=1)  # regular checkpoints have val_result None: must still load
    assert torch.equal(fresh.model.weight, t.model.weight)
    fresh.load_model(str(tmp_path))  # default: model-best
    with pytest.raises(FileNotFoundError, match="model.pth.tar-7"):
        fresh.load_model(str(tmp_path), epoch=7)


def test_resume_restores_weights_optimizer_scheduler_and_best(tmp_path):
    t = _TinyTrainer()
    for _ in range(2):
        t.optim.step()
        t.sched.step()
    t.save_model(1, str(tmp_path), val_result=70.0, model_name="model-best.pth.tar")
    t.save_model(2, str(tmp_path))
    fresh = _TinyTrainer()
    assert fresh.resume_model_if_exist(str(tmp_path)) == 3
    assert torch.equal(fresh.model.weight, t.model.weight)
    assert fresh.optim.param_groups[0]["lr"] == pytest.approx(t.optim.param_groups[0]["lr"])
    assert fresh.best_result == 70.0
    assert _TinyTrainer().resume_model_if_exist(str(tmp_path / "nothing")) == 0


def test_checkpoint_load_refuses_arbitrary_pickles(tmp_path):
    path = tmp_path / "evil.pth.tar"
    torch.save({"state_dict": {}, "payload": _TinyTrainer}, path)  # a class object needs full unpickling
    with pytest.raises(Exception, match="(?i)weights.only|unsupported global"):
        load_checkpoint(str(path))


def test_checkpoint_mixin_is_shared_by_both_engines():
    assert issubclass(TrainerBase, CheckpointMixin)
