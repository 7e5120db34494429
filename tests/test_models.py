"""Models: attention block, relational feature pyramid, TSN head, frame encoders, VideoNet."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

import components
from defaults import extend_cfg
from framework import build_backbone, build_head, get_cfg_default
from models.attention import AttentionBlock, MultiHeadAttention
from models.heads.apn_pyramid import RelationalFeaturePyramid
from models.video_net import VideoNet

components.register_all()


@pytest.mark.parametrize("lq,lk", [(5, 2), (5, 5), (3, 4)])
def test_attention_block_output_has_query_length(lq, lk):
    block = AttentionBlock(16, num_heads=4, dropout=0.0)
    out = block(torch.randn(2, lq, 16), torch.randn(2, lk, 16))
    assert out.shape == (2, lq, 16)


def test_attention_block_uses_the_keys():
    block = AttentionBlock(8, num_heads=2, dropout=0.0).eval()
    q = torch.randn(1, 3, 8)
    assert not torch.allclose(block(q, torch.randn(1, 2, 8)), block(q, torch.randn(1, 2, 8)))


@pytest.mark.parametrize("lq,lk", [(5, 5), (5, 2)])
def test_sdpa_attention_equals_torch_multihead_attention(lq, lk):
    """Same parameter names and, within float tolerance, the same outputs as nn.MultiheadAttention."""
    reference = nn.MultiheadAttention(16, 4, batch_first=True)
    ours = MultiHeadAttention(16, num_heads=4, dropout=0.0)
    ours.load_state_dict(reference.state_dict())  # old checkpoints load
    q, k = torch.randn(3, lq, 16), torch.randn(3, lk, 16)
    key = q if lq == lk else k
    torch.testing.assert_close(ours(q, key), reference(q, key, key, need_weights=False)[0])


def test_official_relu_projections_without_output_projection():
    attn = MultiHeadAttention(8, num_heads=2, dropout=0.0, projections="relu")
    assert attn.out_proj is None and "out_proj.weight" not in attn.state_dict()
    q, k = torch.randn(2, 3, 8), torch.randn(2, 4, 8)
    Q, K, V = (F.linear(x, w, b).relu() for x, w, b in
               zip((q, k, k), attn.in_proj_weight.chunk(3), attn.in_proj_bias.chunk(3)))
    heads = []
    for h in range(2):  # attention per head of width 4, written out
        cols = slice(4 * h, 4 * h + 4)
        weights = torch.softmax(Q[..., cols] @ K[..., cols].transpose(1, 2) / 2.0, dim=-1)
        heads.append(weights @ V[..., cols])
    torch.testing.assert_close(attn(q, k), torch.cat(heads, dim=-1))


@pytest.mark.parametrize("causal", [False, True])
def test_causal_query_attention_ignores_later_queries(causal):
    block = AttentionBlock(8, num_heads=2, dropout=0.0, causal_query=causal).eval()
    q, k = torch.randn(1, 4, 8), torch.randn(1, 3, 8)
    q2 = q.clone()
    q2[:, -1] += 1.0  # change only the last query position
    same_first = torch.allclose(block(q, k)[:, 0], block(q2, k)[:, 0])
    assert same_first == causal


def test_output_dropout_and_residual_dropout_switches():
    block = AttentionBlock(8, num_heads=2, dropout=0.3, residual_dropout=False, output_dropout=0.5).train()
    assert block.cross_attn.dropout.p == 0.0 and block.feedforward.dropout.p == 0.0
    assert block.cross_attn.attn.dropout == 0.3  # dropout stays on the attention weights
    out = block(torch.randn(4, 5, 8), torch.randn(4, 3, 8))
    assert (out == 0).float().mean() > 0.3  # about half of the block's output is dropped
    assert (block.eval()(torch.randn(4, 5, 8), torch.randn(4, 3, 8)) != 0).all()


@pytest.mark.parametrize("mode", ["consecutive", "combinations"])
def test_one_snippet_draw_per_batch(mode):
    head = RelationalFeaturePyramid(8, 5, num_heads=2, snippets=mode, snippet_draw="batch").train()
    idx = head.snippet_indices(6, 3, torch.device("cpu"))
    assert (idx == idx[0]).all()
    draws = {tuple(head.snippet_indices(6, 3, torch.device("cpu"))[0].tolist()) for _ in range(40)}
    assert len(draws) > 1


def test_fixed_snippets_hold_one_draw_in_both_modes():
    head = RelationalFeaturePyramid(8, 5, num_heads=2, dropout=0.0)
    draw = head.draw_snippets(4, torch.device("cpu"))
    assert sorted(draw) == [2, 3, 4] and draw[3].shape == (4, 3)
    x = torch.randn(4, 5, 8)
    with head.fixed_snippets(draw):
        for m in (2, 3, 4):
            torch.testing.assert_close(head.eval().snippet_indices(8, m, x.device), draw[m].repeat(2, 1))
        assert torch.equal(head.train().snippet_indices(4, 3, x.device), draw[3])
        train_out = head(x)
        torch.testing.assert_close(head.eval()(x), train_out)  # dropout 0: the mode no longer matters
    assert (head.eval().snippet_indices(4, 3, x.device) == torch.tensor([1, 2, 3])).all()  # released


@pytest.mark.parametrize("M", [3, 5])
def test_pyramid_shapes_and_level_iii_is_ii_plus_global(M):
    D, B = 16, 4
    head = RelationalFeaturePyramid(D, M, num_heads=2, dropout=0.1)
    p = head.forward_pyramid(torch.randn(B, M, D))
    assert sorted(p.r1) == list(range(2, M)) and sorted(p.r2_per_scale) == list(range(2, M))
    for m in range(2, M):
        assert p.r1[m].shape == (B, m, D) and p.r2_per_scale[m].shape == (B, M, D)
    assert p.r_global.shape == p.r2.shape == p.r3.shape == (B, M, D)
    torch.testing.assert_close(p.r3 - p.r2, p.r_global)
    torch.testing.assert_close(p.r2, sum(p.r2_per_scale.values()))
    assert head(torch.randn(B, M, D)).shape == (B, M * D) and head.out_features == M * D


@pytest.mark.parametrize("head_name", ["apn_pyramid", "tsn", "trn", "trn_attn"])
def test_the_level_the_tables_call_a_models_classifier_input_is_what_h_reads(head_name):
    """analysis/tables.py names ADA on a model's classifier input by that level (apn_pyramid: III)."""
    from analysis.tables import MODEL_ROWS

    head = build_head(head_name, verbose=False, in_features=8, num_segments=4).eval()
    frames = torch.randn(3, 4, 8)
    levels = head.forward_levels(frames)
    torch.testing.assert_close(levels[MODEL_ROWS[head_name].classifier_input], head(frames))
    torch.testing.assert_close(levels["last_hidden"], head(frames))


def test_pyramid_needs_three_segments():
    with pytest.raises(ValueError, match="M >= 3"):
        RelationalFeaturePyramid(16, 2)


@pytest.mark.parametrize("mode", ["consecutive", "combinations"])
def test_snippets_random_in_training_and_centred_in_eval(mode):
    head = RelationalFeaturePyramid(8, 5, num_heads=2, snippets=mode)
    head.train()
    idx = head.snippet_indices(500, 3, torch.device("cpu"))
    assert idx.shape == (500, 3)
    assert (idx.diff(dim=1) > 0).all() and idx.min() >= 0 and idx.max() <= 4
    consecutive = (idx.diff(dim=1) == 1).all(dim=1)
    assert len({tuple(row) for row in idx.tolist()}) > 2
    assert consecutive.all() if mode == "consecutive" else not consecutive.all()
    head.eval()
    assert (head.snippet_indices(4, 3, torch.device("cpu")) == torch.tensor([1, 2, 3])).all()
    x = torch.randn(2, 5, 8)
    torch.testing.assert_close(head(x), head(x))  # evaluation is deterministic


def test_shared_blocks_are_one_block():
    shared = RelationalFeaturePyramid(16, 5, num_heads=2, share_blocks=True)
    separate = RelationalFeaturePyramid(16, 5, num_heads=2)
    n_shared = sum(p.numel() for p in shared.parameters())
    n_separate = sum(p.numel() for p in separate.parameters())
    assert n_separate == 7 * n_shared  # 1 global + 3 local + 3 cross blocks for M=5


def _cfg(backbone="frame_smallcnn", head="apn_pyramid", M=5):
    cfg = get_cfg_default()
    extend_cfg(cfg)
    cfg.MODEL.BACKBONE.NAME = backbone
    cfg.MODEL.BACKBONE.PRETRAINED = False
    cfg.MODEL.BACKBONE.FEATURE_DIM = 32
    cfg.MODEL.HEAD.NAME = head
    cfg.INPUT.NUM_SEGMENTS = M
    return cfg


@pytest.mark.parametrize("head,fdim", [("tsn", 32), ("apn_pyramid", 5 * 32)])
def test_video_net_maps_clips_to_logits(head, fdim):
    net = VideoNet(_cfg(head=head), _cfg(head=head).MODEL, num_classes=7)
    x = torch.randn(3, 5, 3, 32, 32)
    logits, feat = net(x, return_feature=True)
    assert logits.shape == (3, 7) and feat.shape == (3, fdim)
    net.eval()
    assert set(net.features(x, net.levels)) == set(net.levels)
    torch.testing.assert_close(net.classify(net.features(x, ["last_hidden"])["last_hidden"]), net(x))
    with pytest.raises(KeyError, match="no feature level"):
        net.features(x, ["not_a_level"])


def test_frame_encoder_rejects_image_batches():
    enc = build_backbone("frame_smallcnn", verbose=False, feature_dim=8)
    assert enc(torch.randn(2, 3, 3, 32, 32)).shape == (2, 3, 8)
    with pytest.raises(ValueError, match="B, M, C, H, W"):
        enc(torch.randn(2, 3, 32, 32))


def test_partial_bn_freezes_all_but_the_first_batchnorm():
    enc = build_backbone("frame_resnet18", verbose=False, pretrained=False, partial_bn=True)
    enc.train()
    bns = [m for m in enc.cnn.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns[0].training and bns[0].weight.requires_grad
    assert all(not bn.training and not bn.weight.requires_grad for bn in bns[1:])
    before = bns[1].running_mean.clone()
    enc(torch.randn(2, 2, 3, 64, 64))
    assert torch.equal(bns[1].running_mean, before)


def test_backbone_weights_from_a_local_file(tmp_path):
    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    enc = build_backbone("frame_resnet18", verbose=False, pretrained=True, weights=str(path))
    torch.testing.assert_close(enc.cnn.conv1.weight, reference.conv1.weight)
    torch.save({"unrelated": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="not a torchvision resnet18"):
        build_backbone("frame_resnet18", verbose=False, weights=str(tmp_path / "bad.pth"))


def test_unreachable_imagenet_weights_give_a_clear_message(monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(torchvision.models.ResNet18_Weights.IMAGENET1K_V1.__class__, "get_state_dict", offline)
    with pytest.raises(RuntimeError, match="MODEL.BACKBONE.WEIGHTS.*PRETRAINED False"):
        build_backbone("frame_resnet18", verbose=False, pretrained=True)


def test_unknown_backbone_or_head_lists_valid_names():
    with pytest.raises(ValueError, match="frame_smallcnn"):
        build_backbone("frame_resnet51", verbose=False)
    with pytest.raises(ValueError, match="apn_pyramid"):
        build_head("pyramid", verbose=False)


def test_a_one_class_model_is_named_at_the_end_of_a_run(capsys):
    import numpy as np
    from trainers.results import warn_if_one_class
    labels = np.array([0, 1, 2, 1])
    warn_if_one_class(np.eye(3)[[2, 2, 2, 2]], labels)
    assert "predicts class 2 for every target clip" in capsys.readouterr().out
    warn_if_one_class(np.eye(3)[[2, 1, 2, 2]], labels)
    assert capsys.readouterr().out == ""
