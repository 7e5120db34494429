"""STDN (models/heads/stdn.py, trainers/stdn.py): the head on tiny frame maps of both frame encoders, its
grouping and relations, each loss term, the paper-layout row, and one-epoch runs on the synthetic benchmark
(the STDN trainer, and video ADA* on the head's scale levels)."""
import json
import os
import os.path as osp
import re

import pytest
import torch

import components
import train
from analysis.runs import Run
from analysis.tables import RunKey, describe_run
from defaults import extend_cfg, merge_config_file
from framework import EVALUATION_HEADER, get_cfg_default
from models.heads.stdn import SpatialGrouping, STDNHead
from models.heads.trn import RelationSampler
from models.video_net import VideoNet
from tests.helpers import REPO, SYNTHETIC_ARGS, TINY_SYNTHETIC, train_in_process
from trainers.stdn import RelationClassifier, cross_relation_loss, grouping_entropies

components.register_all()

TINY_HEAD = dict(groups=3, centre_dim=8, local_dim=6, global_dim=5, global_grid=4, group_relations=4,
                 temporal_relations=2, bottleneck=12, gate_dim=4, dropout=0.0)


def stdn_net(setting: str, size: int, *opts) -> VideoNet:
    cfg = get_cfg_default()
    extend_cfg(cfg)
    merge_config_file(cfg, osp.join(REPO, "configs", "trainers", "STDN", f"{setting}.yaml"))
    cfg.merge_from_list(["MODEL.BACKBONE.PRETRAINED", "False", "INPUT.NUM_SEGMENTS", "3", "INPUT.SIZE",
                         f"({size}, {size})", "MODEL.STDN.CENTRE_DIM", "8", "MODEL.STDN.LOCAL_DIM", "6",
                         "MODEL.STDN.GLOBAL_DIM", "5", "MODEL.STDN.BOTTLENECK", "12", "MODEL.STDN.GATE_DIM", "4",
                         *opts])
    return VideoNet(cfg, cfg.MODEL, num_classes=4)


@pytest.mark.parametrize("setting,size,channels,grid", [("smallcnn_cpu", 32, 32, 8), ("r50_paper", 64, 2048, 2)])
def test_stdn_on_both_frame_encoders_shapes_levels_gradients_and_eval(setting, size, channels, grid):
    torch.manual_seed(0)
    net = stdn_net(setting, size)
    x = torch.randn(2, 3, 3, size, size, requires_grad=True)
    maps = net.frame_features(x)
    assert maps.shape == (2, 3, channels, grid, grid)  # the CNN's last spatial map, not the D-dim features
    logits = net(x)
    assert logits.shape == (2, 4)
    logits.sum().backward()
    assert x.grad.abs().sum() > 0  # gradients reach the clip (video ADA perturbs it)
    assert net.levels == ["scale3", "scale2", "last_hidden"]
    net.eval()
    with torch.no_grad():
        levels = net.features(x, net.levels)
        assert all(f.shape == (2, 12) for f in levels.values())
        torch.testing.assert_close(levels["last_hidden"], levels["scale3"] + levels["scale2"])
        torch.testing.assert_close(net.classify(levels["last_hidden"]), net(x))
        torch.testing.assert_close(net(x), net(x))  # evaluation: fixed relations, no dropout, BN running stats


def test_smallcnn_feature_maps_are_the_grid_its_features_are_read_from():
    net = stdn_net("smallcnn_cpu", 32).eval()
    x = torch.randn(2, 3, 3, 32, 32)
    with torch.no_grad():
        maps = net.backbone.feature_maps(x)
        flat = net.backbone.cnn(x.flatten(0, 1))  # the encoder's own path to its FC layer
    torch.testing.assert_close(maps.flatten(2), flat.view(2, 3, -1))


def test_a_backbone_without_maps_is_refused_with_what_to_use():
    with pytest.raises(ValueError, match="reads spatial feature maps.*frame_smallcnn"):
        stdn_net("smallcnn_cpu", 32, "MODEL.BACKBONE.NAME", "frame_smallres_tsm")


def test_grouping_assigns_every_position_and_averages_its_groups():
    torch.manual_seed(0)
    grouping = SpatialGrouping(channels=6, groups=3, centre_dim=4, tau=0.5, detach_mass=False)
    maps = torch.randn(2, 6, 4, 4)
    groups, A = grouping(maps)
    assert groups.shape == (2, 3, 6) and A.shape == (2, 16, 3)
    torch.testing.assert_close(A.sum(dim=2), torch.ones(2, 16))  # a distribution over groups per position
    z = maps.flatten(2).transpose(1, 2)
    expected = torch.einsum("npk,npc->nkc", A, z) / (A.sum(dim=1)[..., None] + 1e-6)
    torch.testing.assert_close(groups, expected)
    same = torch.ones(1, 6, 4, 4) * torch.arange(6.0)[None, :, None, None]  # every position alike
    torch.testing.assert_close(grouping(same)[0], torch.arange(6.0).expand(1, 3, 6), atol=1e-4, rtol=1e-4)


def test_detaching_the_group_mass_changes_the_gradient_only():
    torch.manual_seed(0)
    maps = torch.randn(2, 6, 4, 4)
    grads = []
    for detach in (False, True):
        torch.manual_seed(1)
        grouping = SpatialGrouping(6, 3, 4, 0.5, detach_mass=detach)
        groups, _ = grouping(maps)
        groups.pow(2).sum().backward()
        grads.append((groups.detach(), grouping.place_centres[0].weight.grad.clone()))
    torch.testing.assert_close(grads[0][0], grads[1][0])
    assert not torch.allclose(grads[0][1], grads[1][1])


def test_group_relations_are_ordered_tuples_and_official_eval_draws_at_random():
    sampler = RelationSampler(4, 12, ordered=True)
    assert [getattr(sampler, f"relations{k}").shape[0] for k in sampler.scales] == [24, 24, 12]  # 4!/(4-k)!
    sampler.eval()
    assert torch.equal(sampler.chosen(2), sampler.chosen(2))
    official = RelationSampler(4, 3, ordered=True, random_in_eval=True).eval()
    torch.manual_seed(0)
    assert len({tuple(map(tuple, official.chosen(3).tolist())) for _ in range(20)}) > 1


def test_full_temporal_scale_counts_as_many_relations_as_a_sampled_scale():
    torch.manual_seed(0)
    head = STDNHead(in_features=6, num_segments=3, **TINY_HEAD).eval()
    frames = torch.randn(2, 3, head.spatial[0].out_features)
    relation = head.temporal[0](frames.flatten(1)[:, None])[:, 0]  # the one 3-frame relation
    torch.testing.assert_close(head.scale_feature(0, frames), 2 * relation)  # TEMPORAL_RELATIONS = 2


def tiny_parts(seed: int = 0):
    torch.manual_seed(seed)
    head = STDNHead(in_features=6, num_segments=3, **TINY_HEAD)
    r = RelationClassifier(12, 8, 4 * len(head.scales))
    parts = head.forward_parts(torch.randn(4, 3, 6, 4, 4))
    return head, r, parts, torch.tensor([0, 1, 2, 3])


@pytest.mark.parametrize("term", ["ce", "entropy_min", "entropy_mean", "relation"])
def test_each_loss_term_is_finite_and_moves_the_head(term):
    head, r, parts, label = tiny_parts()
    classifier = torch.nn.Linear(12, 4)
    entropy_min, entropy_mean = grouping_entropies(parts.assignments)
    loss = {"ce": torch.nn.functional.cross_entropy(classifier(parts.output), label), "entropy_min": entropy_min,
            "entropy_mean": -entropy_mean, "relation": cross_relation_loss(r(parts.scale_features), label)}[term]
    assert torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in head.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0
    # the entropy terms act on the grouping only; the relation term also reaches the temporal relations
    grouping_grad = head.spatial[0].grouping.place_centres[0].weight.grad
    assert grouping_grad is not None and grouping_grad.abs().sum() > 0
    if term.startswith("entropy"):
        assert head.temporal[0][2].weight.grad is None


def test_entropy_terms_bounds_and_the_official_normalised_reading():
    _, _, parts, _ = tiny_parts()
    low, high = grouping_entropies(parts.assignments)
    K = parts.assignments[0].shape[2]
    assert 0 <= low <= high <= torch.log(torch.tensor(float(K))) + 1e-4  # mean of entropies <= entropy of mean
    one_group = [torch.eye(K)[torch.zeros(5, 16, dtype=torch.long)]]  # every position certain, all in group 0
    low, high = grouping_entropies(one_group)
    assert low.abs() < 1e-3 and high.abs() < 1e-3  # nothing to reward: the second term wants all groups used
    # official: weights normalised over the positions; their mean is 1/P per group whatever the input, so the
    # second term's value is constant (only its gradient through the detached sums acts)
    values = [grouping_entropies(tiny_parts(seed)[2].assignments, "normalised")[1].item() for seed in (0, 1)]
    P = parts.assignments[0].shape[1]
    expected = -K * (1 / P) * torch.log(torch.tensor(1 / P + 1e-5))
    assert values[0] == pytest.approx(values[1], abs=1e-5) == pytest.approx(expected.item(), abs=1e-4)


def test_cross_relation_targets_are_class_times_scales_plus_scale():
    label = torch.tensor([2, 0])
    S, classes = 3, 4
    scores = torch.full((2, S, classes * S), -20.0)
    for b, y in enumerate(label.tolist()):
        for s in range(S):
            scores[b, s, y * S + s] = 20.0
    assert cross_relation_loss(scores, label) < 1e-6
    assert cross_relation_loss(scores.flip(1), label) > 10  # scales swapped: a different target


def test_table_row_of_stdn_runs(tmp_path):
    for trainer, variant in (("STDN", "base"), ("VideoADA", "ADA")):
        config = {"TRAINER.NAME": trainer, "MODEL.HEAD.NAME": "stdn", "MODEL.BACKBONE.NAME": "frame_resnet50",
                  "DATASET.SOURCE_DOMAINS": ["ucf"], "DATASET.TARGET_DOMAINS": ["hmdb"]}
        if trainer == "VideoADA":
            config["TRAINER.VIDEOADA.LEVELS"] = "last_hidden"
        run = Run(str(tmp_path), config, [])
        assert describe_run(run) == RunKey("STDN", variant, "ucf->hmdb")


# ---------------------------------------------------------------------------------------------- end to end
TINY = [*TINY_SYNTHETIC, "OPTIM.MAX_EPOCH", "1", "MODEL.STDN.BOTTLENECK", "16", "MODEL.STDN.LOCAL_DIM", "8",
        "MODEL.STDN.GLOBAL_DIM", "8", "MODEL.STDN.CENTRE_DIM", "8"]


def run_args(root: str, out: str, trainer: str, *opts) -> list:
    return train.build_parser().parse_args([
        "--root", root, *SYNTHETIC_ARGS, "--trainer", trainer, "--config-file", "configs/trainers/STDN/smallcnn_cpu.yaml",
        "--output-dir", out, "--seed", "1", *TINY, *opts])


def results(out: str) -> dict:
    with open(osp.join(out, "results.json")) as f:
        return {(r["split"], r["domain"]): r for r in json.load(f)}


def test_stdn_trains_one_epoch_and_reports(data_root, tmp_path):
    out = str(tmp_path / "stdn")
    train_in_process(run_args(data_root, out, "STDN"))
    log = open(osp.join(out, "log.txt")).read()
    for key in ("loss_ce", "entropy", "mean_entropy", "loss_relation"):
        assert f" {key} " in log
    assert sorted(n for n in os.listdir(out) if osp.isdir(osp.join(out, n)) and n not in ("tensorboard",)) == \
        ["model", "relation_classifier"]
    rows = results(out)
    assert rows[("target", "pooled")]["n"] == 72 and rows[("source val", "studio")]["n"] == 8
    # the table reports the deployed model: its pooled target row agrees with the engine's own evaluator
    test_log = log.split(EVALUATION_HEADER.format("test"))[-1]
    correct, total = (int(re.search(rf"\* {key}: (\d+)", test_log).group(1)) for key in ("correct", "total"))
    assert total == 72 and rows[("target", "pooled")]["accuracy"] == pytest.approx(100 * correct / total)


def test_video_ada_star_on_the_stdn_scales_trains_one_epoch(data_root, tmp_path):
    out = str(tmp_path / "ada")
    train_in_process(run_args(data_root, out, "VideoADA", "TRAINER.VIDEOADA.LEVELS", "scale2+scale3",
                              "TRAINER.VIDEOADA.T_MAX", "1"))
    log = open(osp.join(out, "log.txt")).read()
    assert "loss_adv_scale2" in log and "loss_adv_scale3" in log
    assert results(out)[("target", "pooled")]["n"] == 72


def test_stdn_refuses_another_head_before_training(data_root, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="trains the stdn head.*'tsn'"):
        train_in_process(run_args(data_root, str(out), "STDN", "MODEL.HEAD.NAME", "tsn"))
    assert not (out / "results.json").exists() and not (out / "model").exists()
