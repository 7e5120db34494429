"""The APN trainer (Algorithm 1) on a fixed model: ascent, transport cost, update counts; the ensemble rules."""
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import train
from ensemble import most_confident, softmax_average
from framework import build_trainer
from tests.helpers import SYNTHETIC_ARGS, TINY_SYNTHETIC
from trainers.apn import parse_levels


def make_trainer(tmp_path, *opts, trainer="APN", config="configs/trainers/APN/smallcnn_cpu.yaml"):
    args = train.build_parser().parse_args(["--root", str(tmp_path / "data"), *SYNTHETIC_ARGS, "--trainer", trainer,
                                            "--config-file", config, "--output-dir", str(tmp_path / "out"),
                                            *TINY_SYNTHETIC, "MODEL.PYRAMID.DROPOUT", "0.0", *opts])
    return build_trainer(train.setup_cfg(args))


@pytest.fixture(scope="module")
def apn(tmp_path_factory):
    torch.manual_seed(0)
    return make_trainer(tmp_path_factory.mktemp("apn"), "TRAINER.APN.T_MAX", "1")


@pytest.fixture(scope="module")
def batch(apn):
    data = next(iter(apn.train_loader_x))
    return data["img"], data["label"]


def objective(trainer, x, y, level, r0):
    """l(h(R), Y) - gamma * c(R, R0) in eval mode, as the maximisation sees it."""
    trainer.set_model_mode("eval")
    with torch.no_grad():
        R = trainer.model.features(x, [level])[level]
        value = F.cross_entropy(trainer.model.classify(R), y) - trainer.gamma * F.mse_loss(R, r0)
    trainer.set_model_mode("train")
    return value.item()


def reference(trainer, x, level):
    trainer.set_model_mode("eval")
    with torch.no_grad():
        r0 = trainer.model.features(x, [level])[level]
    trainer.set_model_mode("train")
    return r0


@pytest.mark.parametrize("level", ["II", "III"])
def test_one_ascent_step_increases_the_objective(apn, batch, level):
    x, y = batch
    r0 = reference(apn, x, level)
    x_adv = apn.maximize(x, y)[0][level]
    assert not torch.equal(x_adv, x)
    assert objective(apn, x_adv, y, level, r0) > objective(apn, x, y, level, r0)


def test_a_large_gamma_keeps_adversarial_examples_close_to_the_source(apn, batch):
    x, y = batch
    # gamma * eta must stay small enough for the ascent to be stable (a stiff penalty overshoots)
    apn.t_max, apn.eta = 5, 1.0
    distances = {}
    for gamma in (0.0, 1.0):
        apn.gamma = gamma
        x_adv = apn.maximize(x, y)[0]["III"]
        r0, r_adv = reference(apn, x, "III"), reference(apn, x_adv, "III")
        distances[gamma] = (F.mse_loss(r_adv, r0).item(), (x_adv - x).norm().item())
    apn.t_max, apn.eta, apn.gamma = 1, 1.0, 0.01
    assert distances[1.0][0] < 0.75 * distances[0.0][0]  # transport cost in feature space
    assert distances[1.0][1] < distances[0.0][1]  # and distance in pixel space


def test_maximisation_leaves_weights_and_bn_statistics_alone(apn, batch):
    x, y = batch
    before = {k: v.clone() for k, v in apn.model.state_dict().items()}
    apn.maximize(x, y)
    after = apn.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert apn.model.training  # back in train mode for the theta steps


def test_batched_chains_equal_one_chain_per_level(apn, batch):
    """The ascent runs every level's chain in one batched pass; in MAX_MODE eval each chain is what it would be
    alone."""
    x, y = batch
    assert apn.levels == ["II", "III"] and apn.max_mode == "eval"
    together, _ = apn.maximize(x, y)
    try:
        for level in ("II", "III"):
            apn.levels = [level]
            alone, _ = apn.maximize(x, y)
            torch.testing.assert_close(together[level], alone[level], rtol=1e-4, atol=1e-5)
            assert not torch.allclose(alone[level], x)  # the chain moved the clips
    finally:
        apn.levels = ["II", "III"]  # the fixture is shared by the module's tests


@pytest.mark.parametrize("update,levels,steps", [("sequential", "II+III", 3), ("sequential", "III", 2),
                                                 ("joint", "II+III", 1), ("sequential", "none", 1)])
def test_theta_steps_per_minibatch(tmp_path, update, levels, steps):
    trainer = make_trainer(tmp_path, "TRAINER.APN.UPDATE", update, "TRAINER.APN.LEVELS", levels,
                           "TRAINER.APN.T_MAX", "1")
    calls = []
    step = trainer.optim.step
    trainer.optim.step = lambda *a, **k: (calls.append(1), step(*a, **k))[1]
    trainer.batch_idx, trainer.num_batches = 0, 10
    summary = trainer.forward_backward(next(iter(trainer.train_loader_x)))
    assert len(calls) == steps
    assert summary and all(isinstance(v, float) for v in summary.values())  # a non-empty log of floats


def test_tsn_with_ada_runs_on_the_last_hidden_layer(tmp_path):
    trainer = make_trainer(tmp_path, "MODEL.HEAD.NAME", "tsn", trainer="VideoADA",
                           config="configs/trainers/VideoADA/smallcnn_cpu.yaml")
    assert trainer.levels == ["last_hidden"]
    trainer.batch_idx, trainer.num_batches = 0, 10
    summary = trainer.forward_backward(next(iter(trainer.train_loader_x)))
    assert {"loss_src", "loss_adv_last_hidden", "cost_last_hidden"} <= set(summary)


def test_levels_the_head_lacks_are_refused(tmp_path):
    with pytest.raises(ValueError, match="apn_pyramid"):
        make_trainer(tmp_path, "MODEL.HEAD.NAME", "tsn", "TRAINER.APN.LEVELS", "II+III")


def test_parse_levels():
    assert parse_levels("II+III") == ["II", "III"] and parse_levels("none") == []
    assert parse_levels("global+last_hidden", ["global", "II", "III", "last_hidden"]) == ["global", "last_hidden"]
    with pytest.raises(ValueError, match="has no level"):
        parse_levels("IV", ["global", "II", "III", "last_hidden"])
    with pytest.raises(ValueError):
        parse_levels("II+II")


def test_ensembles():
    a = np.array([[0.6, 0.4], [0.5, 0.5], [0.2, 0.8]])
    b = np.array([[0.1, 0.9], [0.9, 0.1], [0.3, 0.7]])
    np.testing.assert_allclose(softmax_average([a, b]), (a + b) / 2)
    np.testing.assert_allclose(most_confident([a, b]), np.stack([b[0], b[1], a[2]]))


@pytest.mark.slow
def test_bf16_autocast_and_channels_last_run_algorithm_1(tmp_path):
    trainer = make_trainer(tmp_path, "TRAIN.BF16", "True", "TRAIN.CHANNELS_LAST", "True", "TRAINER.APN.T_MAX", "1")
    assert trainer.model.backbone.channels_last
    batch = next(iter(trainer.train_loader_x))
    with trainer.autocast():
        assert trainer.model(batch["img"]).dtype == torch.bfloat16
    trainer.batch_idx, trainer.num_batches = 0, 10
    summary = trainer.forward_backward(batch)
    assert all(np.isfinite(v) for v in summary.values()) and "loss_adv_II" in summary
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())  # weights stay fp32


# ---------------------------------------------------------------------------------------------- issue #10 options
def record_classifier_inputs(trainer):
    """Hooks: every classifier input and every pyramid the head computes, in call order."""
    inputs, pyramids = [], []
    trainer.model.classifier.register_forward_hook(lambda mod, inp, out: inputs.append(inp[0].detach()))
    head, forward_pyramid = trainer.model.head, trainer.model.head.forward_pyramid
    head.forward_pyramid = lambda f: (pyramids.append(forward_pyramid(f)), pyramids[-1])[1]
    return inputs, pyramids


@pytest.mark.parametrize("rule,level_ii", [("own", "r2"), ("last_hidden", "r3")])
def test_line_13_trains_the_level_ii_batch_on_the_chosen_level(tmp_path, rule, level_ii):
    trainer = make_trainer(tmp_path, "TRAINER.APN.T_MAX", "1", "TRAINER.APN.ADV_LOSS_LEVEL", rule)
    inputs, pyramids = record_classifier_inputs(trainer)
    trainer.batch_idx, trainer.num_batches = 0, 10
    trainer.forward_backward(next(iter(trainer.train_loader_x)))
    # the last two passes are the theta steps of lines 13 (X^II) and 14 (X^III)
    (p_ii, p_iii), (h_ii, h_iii) = pyramids[-2:], inputs[-2:]
    assert not torch.allclose(p_ii.r2, p_ii.r3)  # the levels differ, so the check below can fail
    torch.testing.assert_close(h_ii, getattr(p_ii, level_ii).flatten(1))
    torch.testing.assert_close(h_iii, p_iii.r3.flatten(1))  # line 14 reads R^III under both rules


def test_joint_update_reads_the_chosen_level_per_adversarial_batch(tmp_path):
    trainer = make_trainer(tmp_path, "TRAINER.APN.T_MAX", "1", "TRAINER.APN.UPDATE", "joint")
    inputs, pyramids = record_classifier_inputs(trainer)
    batch = next(iter(trainer.train_loader_x))
    B = len(batch["label"])
    trainer.batch_idx, trainer.num_batches = 0, 10
    trainer.forward_backward(batch)
    p = pyramids[-1]  # one pass over source + X^II + X^III
    expected = [p.r3[:B], p.r2[B:2 * B], p.r3[2 * B:]]
    for got, want in zip(inputs[-3:], expected):
        torch.testing.assert_close(got, want.flatten(1))


def test_sum_reduction_steps_each_clip_batch_size_times_as_far_as_mean(apn, batch):
    x, y = batch
    steps = {}
    for reduction in ("sum", "mean"):
        apn.ascent_reduction = reduction
        steps[reduction] = (apn.maximize(x, y)[0]["III"] - x).flatten(1).norm(dim=1)
    apn.ascent_reduction = "sum"
    assert (steps["mean"] > 0).all()
    torch.testing.assert_close(steps["sum"] / steps["mean"], torch.full_like(steps["sum"], float(len(y))))


def eval_features(model, x, level="III"):
    model.eval()
    with torch.no_grad():
        f = model.features(x, [level])[level]
    model.train()
    return f


@pytest.mark.parametrize("order", ["before_update", "after_update"])
def test_r0_is_read_before_or_after_the_line_5_update(tmp_path, order):
    # MAX_SNIPPETS mode: centred snippets in the eval-mode ascent, so features are reproducible here
    trainer = make_trainer(tmp_path, "TRAINER.APN.T_MAX", "1", "TRAINER.APN.LEVELS", "III",
                           "TRAINER.APN.R0", order, "TRAINER.APN.MAX_SNIPPETS", "mode")
    batch = next(iter(trainer.train_loader_x))
    x = batch["img"]
    before = eval_features(trainer.model, x)
    seen = {}
    maximize = trainer.maximize

    def spy(X, Y, r0=None, draw=None):
        seen["r0"], seen["now"] = r0, eval_features(trainer.model, X)  # the model after line 5
        return maximize(X, Y, r0, draw)

    trainer.maximize = spy
    trainer.batch_idx, trainer.num_batches = 0, 10
    log = trainer.forward_backward(batch)
    assert not torch.allclose(before, seen["now"])  # line 5 changed the features
    if order == "before_update":
        torch.testing.assert_close(seen["r0"]["III"], before)
        assert log["cost_III"] == pytest.approx(F.mse_loss(seen["now"], before).item(), rel=1e-4)
    else:
        assert seen["r0"] is None and log["cost_III"] == 0.0  # first ascent pass: R0 = R(X) of the updated model


def test_the_ascent_holds_one_training_mode_snippet_draw(tmp_path):
    torch.manual_seed(3)
    trainer = make_trainer(tmp_path, "TRAINER.APN.T_MAX", "3")
    head, calls = trainer.model.head, []
    snippet_indices = head.snippet_indices
    head.snippet_indices = lambda *a: (calls.append((head.training, snippet_indices(*a))), calls[-1][1])[1]
    trainer.batch_idx, trainer.num_batches = 0, 10
    trainer.forward_backward(next(iter(trainer.train_loader_x)))
    ascent = [idx for training, idx in calls if not training]  # the eval-mode passes: R0 and the maximisation
    assert len(ascent) == 1 + 3  # R0 (line 4, before the update) and T_max = 3 ascent steps
    r0, steps = ascent[0], ascent[1:]  # R0 reads the B clips; each ascent step both chains (2B) at once
    assert all(torch.equal(idx, steps[0]) for idx in steps)  # one draw for all T_max steps and both chains
    assert torch.equal(steps[0], torch.cat([r0, r0]))  # ... and it is R0's draw
    assert (r0[:, 0] > 0).any()  # not only the centred snippet (M=3: [0, 1]); the last segment enters


@pytest.mark.parametrize("config", ["configs/trainers/APN/r50_official.yaml",
                                    "configs/trainers/APN/smallcnn_official.yaml"])
def test_official_configs_build_and_train_one_step(tmp_path, config):
    small = ["MODEL.BACKBONE.NAME", "frame_smallcnn", "MODEL.BACKBONE.PRETRAINED", "False", "INPUT.SIZE", "(32, 32)",
             "DATALOADER.TRAIN_X.BATCH_SIZE", "8"]  # the r50 setting's model swapped for the CPU one
    trainer = make_trainer(tmp_path, *(small if "r50" in config else []), config=config)
    assert (trainer.update, trainer.max_mode, trainer.adv_loss_level, trainer.r0_mode, trainer.ascent_reduction) == \
        ("joint", "train", "last_hidden", "every_step", "mean")
    head = trainer.model.head
    assert head.local_blocks[0] is head.global_block and head.snippet_draw == "batch"
    assert head.global_block.query_self_attn.causal and head.global_block.cross_attn.attn.out_proj is None
    assert trainer.model.backbone.fc.weight.std().item() == pytest.approx(0.001, rel=0.1)  # FC_INIT_STD
    if "r50" in config:
        assert trainer.cfg.OPTIM.MAX_EPOCH == 200 and trainer.cfg.TEST.FINAL_MODEL == "best_val"
    calls = []
    step = trainer.optim.step
    trainer.optim.step = lambda *a, **k: (calls.append(1), step(*a, **k))[1]
    trainer.batch_idx, trainer.num_batches = 0, 10
    log = trainer.forward_backward(next(iter(trainer.train_loader_x)))
    assert len(calls) == 1 and {"loss_all", "max_loss_II", "cost_III"} <= set(log)
    assert all(np.isfinite(v) for v in log.values())


@pytest.mark.parametrize("update", ["sequential", "joint"])
def test_one_host_read_per_minibatch(tmp_path, monkeypatch, update):
    trainer = make_trainer(tmp_path, "TRAINER.APN.T_MAX", "2", "TRAINER.APN.UPDATE", update)
    batch = next(iter(trainer.train_loader_x))
    reads = []
    for name in ("item", "tolist", "__bool__", "__float__"):
        original = getattr(torch.Tensor, name)

        def counted(self, *a, _name=name, _original=original, **k):
            caller = sys._getframe(1).f_code.co_filename
            if "trainers" in caller or "models" in caller:  # the project's code, not torch's optimiser
                reads.append((_name, caller))
            return _original(self, *a, **k)
        monkeypatch.setattr(torch.Tensor, name, counted)
    trainer.batch_idx, trainer.num_batches = 0, 10
    trainer.forward_backward(batch)
    assert [name for name, _ in reads] == ["tolist"]  # the log, read once
