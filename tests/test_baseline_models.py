"""The paper's baseline video models (TRN, TRN-ATTN, TSM, I3D, Non-local): tiny inputs through VideoNet, their
building blocks, checkpoint layouts, dense sampling, and one-epoch runs of VideoVanilla / VideoADA / ADA* on
both engines and on a miniature UCF-HMDB release."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
import torchvision

import components
from datasets import ucf_hmdb
from defaults import extend_cfg, merge_config_file
from framework import ENGINE, get_cfg_default
from models.backbones.i3d import i3d_resnet50
from models.backbones.nonlocal_net import NonLocalBlock3d, nonlocal_resnet50
from models.backbones.tsm import frame_resnet50_tsm, temporal_shift
from models.heads.trn import MultiScaleTRN
from models.video_net import VideoNet
from tests.helpers import ENGINES, REPO, SYNTHETIC_ARGS, TINY_SYNTHETIC, train_in_process
from tests.test_benchmarks import UCF_PER_FOLDER, ucf_release  # noqa: F401  (ucf_release: the miniature release)
from tools import prepare_ucf_hmdb
from video.sampling import sample_clip_indices, sample_dense_indices

components.register_all()

# setting name (configs/trainers/VideoVanilla/<name>.yaml) -> the levels its head exposes besides last_hidden
MODELS = {"trn_cpu": ["scale2", "scale3", "scale4"], "trn_attn_cpu": ["scale2", "scale3", "scale4"],
          "tsm_cpu": [], "i3d_cpu": [], "nonlocal_cpu": []}


def tiny_net(setting: str, frames: int = 4) -> VideoNet:
    cfg = get_cfg_default()
    extend_cfg(cfg)
    merge_config_file(cfg, osp.join(REPO, "configs", "trainers", "VideoVanilla", f"{setting}.yaml"))
    cfg.INPUT.NUM_SEGMENTS = frames
    cfg.MODEL.BACKBONE.FEATURE_DIM = 16
    cfg.MODEL.BACKBONE.DROPOUT = 0.5
    cfg.MODEL.TRN.BOTTLENECK = cfg.MODEL.TRN_ATTN.BOTTLENECK = 16
    cfg.MODEL.TRN.RELATIONS_PER_SCALE = cfg.MODEL.TRN_ATTN.RELATIONS_PER_SCALE = 2
    return VideoNet(cfg, cfg.MODEL, num_classes=3)


@pytest.mark.parametrize("setting", MODELS)
def test_model_shapes_gradients_and_eval_determinism(setting):
    torch.manual_seed(0)
    net = tiny_net(setting)
    x = torch.randn(2, 4, 3, 16, 16, requires_grad=True)
    logits = net(x)
    assert logits.shape == (2, 3)
    logits.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # gradients reach the input (needed by ADA)
    levels = net.features(x, net.levels)
    assert sorted(net.levels) == sorted(MODELS[setting] + ["last_hidden"])
    assert all(f.shape == (2, net.fdim) for f in levels.values())
    net.eval()
    with torch.no_grad():
        torch.testing.assert_close(net(x), net(x))  # no dropout, fixed relations, BN running statistics
        torch.testing.assert_close(net.classify(net.features(x, ["last_hidden"])["last_hidden"]), net(x))


def test_trn_samples_relations_in_training_and_fixes_them_in_eval():
    head = MultiScaleTRN(in_features=8, num_segments=5, bottleneck=8, relations_per_scale=2)
    sampler = head.sampler
    assert head.scales == [5, 4, 3, 2] and getattr(sampler, "relations2").shape == (10, 2)
    sampler.eval()
    assert torch.equal(sampler.chosen(3), sampler.chosen(3)) and sampler.chosen(3).shape == (2, 3)
    assert sampler.chosen(5).tolist() == [[0, 1, 2, 3, 4]]  # the full scale has one relation
    sampler.train()
    torch.manual_seed(0)
    draws = {tuple(map(tuple, sampler.chosen(2).tolist())) for _ in range(20)}
    assert len(draws) > 1
    for rel in sampler.chosen(3).tolist():  # frames of a relation stay in temporal order
        assert rel == sorted(rel)
    # the head's output is the sum of the scale features, each classified on its own under ADA*
    head.eval()
    f = torch.randn(3, 5, 8)
    levels = head.forward_levels(f)
    torch.testing.assert_close(levels["last_hidden"], sum(levels[f"scale{k}"] for k in range(2, 6)))


def test_temporal_shift_moves_an_eighth_of_the_channels_each_way():
    B, M, C = 1, 3, 16
    x = torch.arange(M, dtype=torch.float).view(1, M, 1, 1, 1).expand(B, M, C, 2, 2).reshape(B * M, C, 2, 2) + 1
    y = temporal_shift(x, M).view(B, M, C, 2, 2)[0, :, :, 0, 0]  # (M, C): each entry is its source frame + 1
    assert y[:, 0].tolist() == [2, 3, 0]  # channels 0..1: from the next segment
    assert y[:, 2].tolist() == [0, 1, 2]  # channels 2..3: from the previous segment
    assert y[:, 4:].eq(torch.tensor([[1.0], [2.0], [3.0]])).all()  # the rest stay


def test_tsm_resnet50_shifts_in_every_block():
    net = frame_resnet50_tsm(pretrained=False, num_segments=4, feature_dim=8)
    shifted = [m for m in net.modules() if type(m).__name__ == "ShiftThen"]
    assert len(shifted) == 16  # 3 + 4 + 6 + 3 bottlenecks


def test_dense_sampling_is_consecutive_with_stride_random_in_training_and_centred_in_eval():
    assert sample_dense_indices(40, 8, 2, train=False) == [12 + 2 * i for i in range(8)]
    g = torch.Generator().manual_seed(0)
    starts = {sample_dense_indices(40, 8, 2, train=True, generator=g)[0] for _ in range(30)}
    assert len(starts) > 3 and max(starts) <= 40 - 15
    assert sample_dense_indices(10, 4, 5, train=False) == [0, 3, 6, 9]  # the stride shrinks to fit
    assert sample_dense_indices(3, 6, 2, train=False) == [0, 0, 1, 1, 2, 2]  # too short: in order, repeated
    assert sample_clip_indices(40, 4, train=False, mode="tsn") == [5, 15, 25, 35]
    with pytest.raises(ValueError, match="INPUT.SAMPLING"):
        sample_clip_indices(40, 4, train=False, mode="uniform")


def test_nonlocal_blocks_start_as_identity_and_stay_trainable_under_partial_bn():
    block = NonLocalBlock3d(8).eval()
    x = torch.randn(1, 8, 2, 4, 4)
    torch.testing.assert_close(block(x), x)
    encoder = nonlocal_resnet50(pretrained=False, partial_bn=True, feature_dim=8)
    nonlocal_blocks = [m for m in encoder.modules() if isinstance(m, NonLocalBlock3d)]
    assert len(nonlocal_blocks) == 5  # 2 in res3 + 3 in res4
    assert all(b.bn not in encoder.frozen_batch_norms and b.bn.weight.requires_grad for b in nonlocal_blocks)


def test_imagenet_resnet50_weights_are_inflated(tmp_path):
    state = torchvision.models.resnet50(weights=None).state_dict()
    path = str(tmp_path / "resnet50.pth")
    torch.save(state, path)
    encoder = i3d_resnet50(pretrained=False, weights=path, feature_dim=8)
    w3 = encoder.net.layer1[0].conv1.weight  # temporal kernel 3
    assert w3.shape[2] == 3
    torch.testing.assert_close(w3.sum(dim=2), state["layer1.0.conv1.weight"])  # repeated over t, divided by t
    torch.testing.assert_close(encoder.net.conv1.weight.sum(dim=2), state["conv1.weight"])
    torch.testing.assert_close(encoder.net.bn1.running_var, state["bn1.running_var"])


@pytest.fixture(scope="module")
def kinetics_checkpoint(tmp_path_factory):
    """A randomly initialised pytorchvideo i3d_r50 (the public Kinetics-400 layout), saved as its hub file is."""
    hub = pytest.importorskip("pytorchvideo.models.hub", reason="pip install pytorchvideo for the reference layout")
    torch.manual_seed(0)
    reference = hub.i3d_r50(pretrained=False).eval()
    path = str(tmp_path_factory.mktemp("kinetics") / "I3D_8x8_R50.pyth")
    torch.save({"model_state": reference.state_dict()}, path)
    return reference, path


@pytest.mark.parametrize("factory", [i3d_resnet50, nonlocal_resnet50])
def test_pytorchvideo_i3d_r50_checkpoint_maps_onto_our_network(kinetics_checkpoint, factory):
    reference, path = kinetics_checkpoint
    encoder = factory(pretrained=False, weights=path, feature_dim=8).eval()
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        expected = x
        for block in reference.blocks[:-1]:  # everything but the Kinetics classifier
            expected = block(expected)
        torch.testing.assert_close(encoder.net(x), expected)  # non-local blocks start as identity


def test_an_unknown_checkpoint_layout_lists_the_unmapped_keys(kinetics_checkpoint, tmp_path):
    _, path = kinetics_checkpoint
    state = torch.load(path)["model_state"]
    state["blocks.3.res_blocks.0.extra.weight"] = torch.zeros(1)
    del state["blocks.4.res_blocks.5.branch2.conv_c.weight"]
    bad = str(tmp_path / "bad.pyth")
    torch.save(state, bad)
    with pytest.raises(ValueError) as e:
        i3d_resnet50(pretrained=False, weights=bad)
    assert "blocks.3.res_blocks.0.extra.weight" in str(e.value) and "layer3.5.conv3.weight" in str(e.value)
    torch.save({"conv.weight": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="neither a pytorchvideo i3d_r50"):
        i3d_resnet50(pretrained=False, weights=bad)


# ---------------------------------------------------------------------------------------------- end to end
# (trainer, setting, extra KEY VALUE): each model once; together ERM, ADA (last_hidden) and ADA* (TRN's scales).
RUNS = [("VideoADA", "trn_adastar_cpu", ["TRAINER.VIDEOADA.LEVELS", "scale2+scale3"]),
        ("VideoADA", "trn_attn_cpu", []), ("VideoVanilla", "tsm_cpu", []), ("VideoADA", "i3d_cpu", []),
        ("VideoVanilla", "nonlocal_cpu", [])]
TINY = [*TINY_SYNTHETIC, "MODEL.BACKBONE.FEATURE_DIM", "8", "OPTIM.MAX_EPOCH", "1", "TRAINER.VIDEOADA.T_MAX", "1",
        "MODEL.TRN.BOTTLENECK", "16", "MODEL.TRN_ATTN.BOTTLENECK", "16", "INPUT.NUM_SEGMENTS", "4"]


def run_args(root: str, out: str, trainer: str, setting: str, extra: list) -> list:
    return ["--root", root, *SYNTHETIC_ARGS, "--trainer", trainer, "--config-file",
            f"configs/trainers/{trainer}/{setting}.yaml", "--output-dir", out, "--seed", "1", *TINY, *extra]


def check_run(out: str, trainer: str) -> None:
    with open(osp.join(out, "results.json")) as f:
        rows = {(r["split"], r["domain"]): r for r in json.load(f)}
    assert rows[("target", "pooled")]["n"] == 72 and rows[("source val", "studio")]["n"] == 8
    log = open(osp.join(out, "log.txt")).read()
    assert ("loss_adv" in log) == (trainer == "VideoADA")


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_every_model_trains_one_epoch_with_and_without_ada(engine, data_root, tmp_path):
    """All runs of one engine in one process (this one where it runs that engine), so that the import cost is
    paid once at most."""
    runs = [run_args(data_root, str(tmp_path / setting), trainer, setting, extra) for trainer, setting, extra in RUNS]
    if engine == ENGINE:
        for args in runs:
            train_in_process(args)
    else:
        driver = ("import json, sys, train\n"
                  "for args in json.loads(sys.argv[1]):\n"
                  "    train.main(train.build_parser().parse_args(args))\n")
        proc = subprocess.run([sys.executable, "-c", driver, json.dumps(runs)], cwd=REPO,
                              env=dict(os.environ, VIDEODG_ENGINE=engine), capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for trainer, setting, _ in RUNS:
        check_run(str(tmp_path / setting), trainer)
    log = open(str(tmp_path / "trn_adastar_cpu" / "log.txt")).read()
    assert "loss_adv_scale2" in log and "loss_adv_scale3" in log  # ADA* chains on TRN's scale features


@pytest.mark.slow
def test_i3d_with_dense_sampling_on_a_miniature_ucf_hmdb_release(ucf_release, tmp_path):  # noqa: F811
    assert prepare_ucf_hmdb.main(["--root", str(ucf_release)]) == 0
    out = str(tmp_path / "i3d")
    train_in_process(["--root", str(ucf_release), "--trainer", "VideoADA", "--config-file",
                    "configs/trainers/VideoADA/i3d_cpu.yaml", "--dataset-config-file", "configs/datasets/ucf_hmdb.yaml",
                    "--source-domains", "ucf", "--target-domains", "hmdb", "--output-dir", out, "--seed", "1",
                    "INPUT.SIZE", "(32, 32)", "INPUT.TEST_SCALE_SIZE", "32", "INPUT.NUM_SEGMENTS", "4",
                    "INPUT.DENSE_STRIDE", "2", "MODEL.BACKBONE.FEATURE_DIM", "8", "OPTIM.MAX_EPOCH", "1",
                    "TRAINER.VIDEOADA.T_MAX", "1", "DATALOADER.NUM_WORKERS", "0", "DATALOADER.TRAIN_X.BATCH_SIZE",
                    "4", "DATALOADER.TEST.BATCH_SIZE", "8", "USE_CUDA", "False"])
    with open(osp.join(out, "results.json")) as f:
        rows = {(r["split"], r["domain"]): r["n"] for r in json.load(f)}
    assert rows[("target", "hmdb")] == len(ucf_hmdb.HMDB_FOLDERS) * UCF_PER_FOLDER  # every HMDB clip
