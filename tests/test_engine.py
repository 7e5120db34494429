"""The built-in engine: config keys and yacs rules, registries, optimiser/scheduler, checkpoints, resume."""
import json
import os
import subprocess
import sys

import pytest
import torch
import torch.nn as nn

from framework.builtin.config import clean_cfg, get_cfg_default
from framework.builtin.optim import build_lr_scheduler, build_optimizer
from framework.builtin.registry import Registry, check_availability
from framework.builtin.trainer import TrainerBase
from framework.builtin.utils import load_checkpoint
from tests.helpers import ENGINES, REPO


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
    with pytest.raises(KeyError, match='THING: the name "Alpha" is taken by .*Alpha.*force=True'):
        reg.register(Alpha)
    reg.register(Alpha, force=True)
    with pytest.raises(KeyError, match=r'THING has nothing named "Beta"; it holds .*Alpha'):
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
    # Dassl's keys, plus the random state for an exact resume
    assert set(ckpt) == {"state_dict", "epoch", "optimizer", "scheduler", "val_result", "rng_state"}
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


def checkpoint_code(framework) -> list:
    """[engine, TrainerX is a CheckpointMixin, the checkpoint methods TrainerX takes from elsewhere]."""
    methods = ("save_model", "load_model", "resume_model_if_exist")
    return [framework.ENGINE, issubclass(framework.TrainerX, framework.CheckpointMixin),
            [m for m in methods if getattr(framework.TrainerX, m) is not getattr(framework.CheckpointMixin, m)]]


@pytest.mark.parametrize("engine", ENGINES)
def test_checkpoint_mixin_is_shared_by_both_engines(engine):
    """Dassl's TrainerX, like the built-in one, saves, loads and resumes with CheckpointMixin's code (ahead of
    Dassl's methods of the same names, which break on current PyTorch)."""
    import framework
    if engine == framework.ENGINE:
        found = checkpoint_code(framework)
    else:  # the other engine, in a process of its own
        probe = ("import json, framework; from tests.test_engine import checkpoint_code; "
                 "print(json.dumps(checkpoint_code(framework)))")
        proc = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True,
                              env=dict(os.environ, VIDEODG_ENGINE=engine))
        assert proc.returncode == 0, proc.stderr[-3000:]
        found = json.loads(proc.stdout.splitlines()[-1])
    assert found == [engine, True, []]


# --------------------------------------------------------------------------- best-epoch selection (issue 11)
class _ValTrainer(TrainerBase):
    """A real linear classifier, a real validation loader and the Classification evaluator: enough for the
    mixin's per-epoch selection and regular checkpoints."""

    def __init__(self, out_dir, max_epoch=4, keep=3, freq=1):
        super().__init__()
        from framework.builtin.evaluation import build_evaluator
        cfg = get_cfg_default()
        cfg.OUTPUT_DIR = str(out_dir)
        cfg.TEST.FINAL_MODEL = "best_val"
        cfg.TRAIN.CHECKPOINT_FREQ = freq
        cfg.TRAIN.CHECKPOINT_KEEP = keep
        self.cfg, self.output_dir, self.max_epoch, self.epoch = cfg, str(out_dir), max_epoch, 0
        self.device = torch.device("cpu")
        # 4 validation items of 2 classes; inputs are one-hot so the weights set the logits directly
        x = torch.eye(2).repeat(2, 1)
        y = torch.tensor([0, 1, 0, 1])
        self.val_loader = [{"img": x, "label": y}]
        self.model = nn.Linear(2, 2, bias=False)
        self.evaluator = build_evaluator(cfg)
        self.best_result = -float("inf")
        self.register_model("model", self.model, None, None)

    def parse_batch_test(self, batch):
        return batch["img"], batch["label"]

    def model_inference(self, input):
        return self.model(input)

    def end_epoch(self, epoch, margin):
        """Logits margin * (2*I - 1): every item right when margin > 0, with a loss that falls as margin grows."""
        self.epoch = epoch
        with torch.no_grad():
            self.model.weight.copy_(margin * (2 * torch.eye(2) - 1))
        self.checkpoint_after_epoch()


def test_saturated_validation_picks_the_lower_loss_epoch_and_says_why(tmp_path, capsys):
    t = _ValTrainer(tmp_path, max_epoch=4)
    for epoch, margin in enumerate([-1.0, 0.5, 2.0, 1.0]):  # 0%, then 100% three times with loss low at epoch 3
        t.end_epoch(epoch, margin)
    out = capsys.readouterr().out
    assert "Best epoch so far: 3" in out and "lower val loss" in out and "tied with epoch 2" in out
    assert "Best epoch stays 3" in out  # epoch 4 ties on accuracy but has a higher loss
    best = load_checkpoint(str(tmp_path / "model" / "model-best.pth.tar"))
    assert best["epoch"] == 3 and best["val_result"] == 100.0 and "lower val loss" in best["selection"]
    # deploying the best model names the chosen epoch and the reason
    t.load_model(str(tmp_path))
    assert "Chosen epoch 3 (val accuracy 100.0%" in capsys.readouterr().out


def test_full_tie_keeps_the_later_epoch_and_resume_keeps_the_record(tmp_path, capsys):
    t = _ValTrainer(tmp_path, max_epoch=3)
    t.end_epoch(0, 1.0)
    t.end_epoch(1, 1.0)
    assert "the later epoch" in capsys.readouterr().out
    assert load_checkpoint(str(tmp_path / "model" / "model-best.pth.tar"))["epoch"] == 2
    fresh = _ValTrainer(tmp_path, max_epoch=3)
    assert fresh.resume_model_if_exist(str(tmp_path)) == 2
    assert fresh.best_selection["epoch"] == 2 and fresh.best_result == 100.0
    fresh.end_epoch(2, 0.5)  # same accuracy, higher loss than the restored record: not chosen
    assert "Best epoch stays 2" in capsys.readouterr().out


def test_selection_order_is_accuracy_then_loss_then_epoch():
    from framework.builtin.checkpointing import selection_key
    a = {"epoch": 1, "accuracy": 90.0, "loss": 0.1}
    assert selection_key({"epoch": 2, "accuracy": 91.0, "loss": 9.0}) > selection_key(a)
    assert selection_key({"epoch": 2, "accuracy": 90.0, "loss": 0.05}) > selection_key(a)
    assert selection_key({"epoch": 2, "accuracy": 90.0, "loss": 0.2}) < selection_key(a)
    assert selection_key({"epoch": 2, "accuracy": 90.0, "loss": 0.1}) > selection_key(a)
    assert selection_key({"epoch": 2, "accuracy": 90.0, "loss": float("nan")}) < selection_key(a)


# --------------------------------------------------------------------------- keeping the last K (issue 15)
def test_only_the_last_k_regular_checkpoints_are_kept(tmp_path):
    t = _ValTrainer(tmp_path, max_epoch=6, keep=2)
    for epoch in range(6):
        t.end_epoch(epoch, 1.0 + epoch)
    files = sorted(os.listdir(tmp_path / "model"))
    assert files == ["checkpoint", "model-best.pth.tar", "model.pth.tar-5", "model.pth.tar-6"]
    with pytest.raises(FileNotFoundError, match=r"Epoch 2 was not kept.*\[5, 6\].*CHECKPOINT_KEEP"):
        t.load_model(str(tmp_path), epoch=2)
    t.load_model(str(tmp_path), epoch=5)


# --------------------------------------------------------------------------- recoverable checkpoints (issue 13)
def test_corrupt_latest_checkpoint_falls_back_to_the_newest_intact(tmp_path, capsys):
    t = _TinyTrainer()
    t.save_model(0, str(tmp_path))
    weights_epoch1 = t.model.weight.detach().clone()
    with torch.no_grad():
        t.model.weight.add_(1.0)
    t.save_model(1, str(tmp_path))
    latest = tmp_path / "model" / "model.pth.tar-2"
    latest.write_bytes(latest.read_bytes()[:100])  # truncated, as by a full disk or a copy cut short
    fresh = _TinyTrainer()
    assert fresh.resume_model_if_exist(str(tmp_path)) == 1
    out = capsys.readouterr().out
    assert str(latest) in out and "Falling back to the newest intact checkpoint" in out
    assert "weights_only=False" not in out
    assert torch.equal(fresh.model.weight, weights_epoch1)
    # loading it directly names the file and what to do, never the unsafe switch
    from framework.builtin.utils import CheckpointError
    with pytest.raises(CheckpointError) as e:
        fresh.load_model(str(tmp_path), epoch=2)
    assert str(latest) in str(e.value) and "Delete it" in str(e.value) and "weights_only=False" not in str(e.value)
    (tmp_path / "model" / "empty").write_bytes(b"")
    with pytest.raises(CheckpointError, match="truncated or damaged"):
        load_checkpoint(str(tmp_path / "model" / "empty"))


def test_a_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    t = _TinyTrainer()
    t.save_model(0, str(tmp_path))
    import errno

    def disk_full(obj, path, *args, **kwargs):
        with open(path, "wb") as f:
            f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match=r"Could not write the checkpoint .*model.pth.tar-1.*previous checkpoint is untouched"):
        t.save_model(0, str(tmp_path))
    monkeypatch.undo()
    folder = tmp_path / "model"
    assert sorted(os.listdir(folder)) == ["checkpoint", "model.pth.tar-1"]  # no temporary file left
    assert load_checkpoint(str(folder / "model.pth.tar-1"))["epoch"] == 1


# --------------------------------------------------------------------------- log formatting
def test_tiny_loss_values_print_readably():
    from framework.builtin.utils import MetricMeter
    meter = MetricMeter()
    meter.update({"loss": 0.5, "cost_II": 3.2e-6, "zero": 0.0})
    text = str(meter)
    assert "loss 0.5000 (0.5000)" in text and "cost_II 3.200e-06 (3.200e-06)" in text and "zero 0.0000" in text


class _HintingTrainer(_ValTrainer):
    """A method that names its own step size when a loss is not finite (the hook a trainer overrides)."""

    def non_finite_hints(self):
        return ["TRAINER.MYMETHOD.STEP=0.5 (the step)"] + super().non_finite_hints()


def test_non_finite_loss_names_the_term_and_the_keys(tmp_path):
    from defaults import extend_cfg
    t = _HintingTrainer(tmp_path)
    extend_cfg(t.cfg)
    t.epoch, t.batch_idx = 2, 4

    def adversarial_update():  # as a trainer holds its terms: a name per loss, the pyramid level beside it
        level = "II"
        loss_adv = (t.model.weight * float("nan")).sum()
        t.model_backward_and_update(loss_adv)
        return level

    with pytest.raises(FloatingPointError) as e:
        adversarial_update()
    text = str(e.value)
    assert "loss_adv_II = nan" in text and "epoch 3, batch 5" in text
    assert "TRAINER.MYMETHOD.STEP=0.5" in text and "OPTIM.LR=" in text and "OPTIM.CLIP_GRAD_NORM=" in text
    # the engine names no method's keys: a trainer without the hook gets the optimiser's only
    plain = _ValTrainer(tmp_path)
    with pytest.raises(FloatingPointError) as e:
        plain.check_finite_losses({"loss_x": 1.0, "loss_y": float("inf")})
    assert "loss_y = inf" in str(e.value) and "loss_x" not in str(e.value)
    assert "OPTIM.LR=" in str(e.value) and "TRAINER." not in str(e.value)
    plain.check_finite_losses({"loss_x": torch.tensor(2.0)})  # finite: nothing happens


def test_video_ada_hints_name_its_step_and_weight():
    from defaults import extend_cfg
    from trainers.apn import APN
    apn = APN.__new__(APN)  # the hook reads only the config and the two step sizes, so no data is built
    apn.cfg = get_cfg_default()
    extend_cfg(apn.cfg)
    apn.eta, apn.gamma = 1e3, 0.5
    hints = apn.non_finite_hints()
    assert hints[:2] == ["TRAINER.APN.ETA=1000.0 (ascent step on the input)",
                         "TRAINER.APN.GAMMA=0.5 (weight of the transport cost)"]
    assert "OPTIM.LR=0.0003" in hints


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_optimizer_implementations_agree(name):
    from defaults import extend_cfg
    results = {}
    for impl in ("auto", "for_loop", "foreach", "fused"):
        cfg = get_cfg_default()
        extend_cfg(cfg)
        cfg.OPTIM.NAME, cfg.OPTIM.LR, cfg.OPTIM.IMPLEMENTATION = name, 0.1, impl
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        optim = build_optimizer(model, cfg.OPTIM)
        for step in range(3):
            optim.zero_grad()
            model(torch.ones(5, 4) * (step + 1)).pow(2).sum().backward()
            optim.step()
        results[impl] = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert torch.equal(results["auto"], results["for_loop"])  # the default changes nothing on CPU
    for impl in ("foreach", "fused"):
        assert torch.allclose(results[impl], results["auto"], atol=1e-6)
    cfg.OPTIM.IMPLEMENTATION = "fast"
    with pytest.raises(ValueError, match="OPTIM.IMPLEMENTATION"):
        build_optimizer(model, cfg.OPTIM)
