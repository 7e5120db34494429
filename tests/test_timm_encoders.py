"""The timm ViT frame encoders (models/backbones/timm_vit.py): registration, local weights and their errors, the
checkpoint's normalisation, the fine-tuning keys, video ADA through a ViT and one epoch of the main job's setting.

Everything runs on real timm models at small sizes; the ViT-B encoders are built once, with random weights."""
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

import train
from framework import build_backbone, build_trainer
from models.backbones.timm_vit import build_vit, vit_encoder
from tests.helpers import REPO, SYNTHETIC_ARGS, TINY_SYNTHETIC, train_in_process
from video.transforms import IMAGENET_MEAN, IMAGENET_STD

ENCODERS = ("frame_vit_b16", "frame_vit_b16_clip", "frame_vit_tiny")
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
SMALL_CLIP = dict(embed_dim=32, depth=1, num_heads=2)  # CLIP ViT-B/16's layout and config at a test size
VIT_CPU = {"APN": "configs/trainers/APN/vit_cpu.yaml", "VideoVanilla": "configs/trainers/VideoVanilla/vit_cpu.yaml"}


def make_trainer(tmp_path, trainer: str, *opts):
    args = train.build_parser().parse_args(["--root", str(tmp_path / "data"), *SYNTHETIC_ARGS, "--trainer", trainer,
                                            "--config-file", VIT_CPU[trainer], "--output-dir", str(tmp_path / "out"),
                                            *TINY_SYNTHETIC, *opts])
    return build_trainer(train.setup_cfg(args))


@pytest.fixture(scope="module")
def apn(tmp_path_factory):
    torch.manual_seed(0)
    return make_trainer(tmp_path_factory.mktemp("vit_apn"), "APN", "TRAINER.APN.T_MAX", "2")


def test_help_lists_the_vit_encoders():
    proc = subprocess.run([sys.executable, "train.py", "--help"], cwd=REPO, capture_output=True, text=True,
                          check=True)
    backbones = next(line for line in proc.stdout.splitlines() if line.strip().startswith("backbones:"))
    assert all(name in backbones for name in ENCODERS)


@pytest.mark.parametrize("name", ["frame_vit_b16", "frame_vit_b16_clip"])
def test_vit_b16_encoders_map_clips_to_frame_features(name, capsys):
    enc = build_backbone(name, verbose=False, pretrained=False, feature_dim=24)
    assert len(enc.vit.blocks) == 12 and enc.vit.num_features == 768
    out = enc(torch.randn(2, 3, 3, 32, 32))  # any frame size: the position embeddings are resampled
    assert out.shape == (2, 3, 24) and torch.isfinite(out).all()
    assert "random init" in capsys.readouterr().out


def test_weights_from_a_local_file(tmp_path):
    torch.manual_seed(1)
    reference = build_vit("frame_vit_tiny", pretrained=False, weights="")
    state = reference.state_dict()
    torch.save(state, tmp_path / "tiny.pth")
    torch.save({"state_dict": state}, tmp_path / "wrapped.pth.tar")  # a training checkpoint's layout
    save_file(state, str(tmp_path / "tiny.safetensors"))
    for file in ("tiny.pth", "wrapped.pth.tar", "tiny.safetensors"):
        enc = build_backbone("frame_vit_tiny", verbose=False, weights=str(tmp_path / file))
        for key, value in state.items():
            torch.testing.assert_close(enc.vit.state_dict()[key], value)
    fresh = build_backbone("frame_vit_tiny", verbose=False)
    assert not torch.equal(fresh.vit.pos_embed, reference.pos_embed)  # so equality above came from the file

    torch.save(build_backbone("frame_smallcnn", verbose=False).cnn.state_dict(), tmp_path / "cnn.pth")
    with pytest.raises(ValueError, match="is not a state dict of frame_vit_tiny"):
        build_backbone("frame_vit_tiny", verbose=False, weights=str(tmp_path / "cnn.pth"))


def test_a_missing_weights_file_names_the_file_and_the_fix(tmp_path):
    missing = str(tmp_path / "ViT-B-16.safetensors")
    with pytest.raises(FileNotFoundError) as error:
        build_backbone("frame_vit_b16_clip", verbose=False, weights=missing)
    message = str(error.value)
    assert missing in message and "MODEL.BACKBONE.WEIGHTS" in message
    assert "timm/vit_base_patch16_clip_224.openai" in message and "PRETRAINED False" in message


def test_unreachable_hub_weights_give_a_clear_message(monkeypatch):
    import timm.models._builder

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(timm.models._builder, "load_state_dict_from_hf", offline)
    with pytest.raises(RuntimeError, match="MODEL.BACKBONE.WEIGHTS.*PRETRAINED False"):
        vit_encoder("frame_vit_b16_clip", pretrained=True, arch_overrides=SMALL_CLIP)


def _vit_input(encoder, clips: torch.Tensor) -> torch.Tensor:
    """What the ViT's patch embedding receives for these clips."""
    seen = []
    handle = encoder.vit.patch_embed.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach()))
    encoder(clips)
    handle.remove()
    return seen[0]


def test_a_clip_checkpoint_gets_clip_normalisation(tmp_path, capsys):
    torch.manual_seed(2)
    path = str(tmp_path / "clip.pth")
    torch.save(build_vit("frame_vit_b16_clip", False, "", **SMALL_CLIP).state_dict(), path)
    pixels = torch.rand(1, 2, 3, 32, 32)
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    clips = (pixels - mean) / std  # as the clip transform normalises them by default
    enc = vit_encoder("frame_vit_b16_clip", weights=path, arch_overrides=SMALL_CLIP).eval()
    log = capsys.readouterr().out
    assert str(CLIP_MEAN) in log and "INPUT.PIXEL_MEAN" in log and "maps its input" in log
    clip_mean, clip_std = torch.tensor(CLIP_MEAN).view(3, 1, 1), torch.tensor(CLIP_STD).view(3, 1, 1)
    torch.testing.assert_close(_vit_input(enc, clips), ((pixels - clip_mean) / clip_std).flatten(0, 1))

    # The transform already uses CLIP's statistics, or the user keeps the transform's: nothing is mapped.
    for kwargs in (dict(pixel_mean=CLIP_MEAN, pixel_std=CLIP_STD), dict(input_norm="transform")):
        enc = vit_encoder("frame_vit_b16_clip", weights=path, arch_overrides=SMALL_CLIP, **kwargs).eval()
        assert enc.input_scale is None
        torch.testing.assert_close(_vit_input(enc, clips), clips.flatten(0, 1))
    assert "frames go in as the clip transform normalises them" in capsys.readouterr().out


def test_cnn_only_choices_are_refused_or_explained(capsys):
    with pytest.raises(ValueError, match="PARTIAL_BN False"):
        build_backbone("frame_vit_tiny", verbose=False, partial_bn=True)
    enc = build_backbone("frame_vit_tiny", verbose=False)
    with pytest.raises(ValueError, match="MIXSTYLE.LAYERS empty"):
        enc.add_mixstyle(["conv1"])
    before = enc.vit.patch_embed.proj.weight.stride()
    enc.use_channels_last()
    assert enc.vit.patch_embed.proj.weight.stride() == before
    assert "no effect on a ViT" in capsys.readouterr().out


def test_bf16_autocast_runs_the_vit_in_bf16_with_finite_input_gradients():
    """TRAIN.BF16 is the trainers' autocast; on a ViT every block's matmuls run in bf16."""
    enc = build_backbone("frame_vit_tiny", verbose=False, feature_dim=8)
    x = torch.randn(2, 3, 3, 32, 32, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = enc(x)
    assert out.dtype == torch.bfloat16
    (grad, ) = torch.autograd.grad(out.float().sum(), x)
    assert grad.dtype == torch.float32 and torch.isfinite(grad).all() and grad.abs().sum() > 0


@pytest.mark.parametrize("last,trainable_blocks", [(-1, [0, 1, 2, 3]), (2, [2, 3]), (0, [])])
def test_train_last_blocks(last, trainable_blocks):
    enc = build_backbone("frame_vit_tiny", verbose=False, train_last_blocks=last)
    trains = lambda module: all(p.requires_grad for p in module.parameters())  # noqa: E731
    frozen = lambda module: not any(p.requires_grad for p in module.parameters())  # noqa: E731
    for i, block in enumerate(enc.vit.blocks):
        assert trains(block) if i in trainable_blocks else frozen(block)
    assert enc.vit.pos_embed.requires_grad == (last == -1) and enc.vit.patch_embed.proj.weight.requires_grad == (
        last == -1)
    assert trains(enc.vit.norm) == (last != 0) and trains(enc.fc)  # the projection to D always trains


def test_layer_wise_lr_decay_and_frozen_blocks_in_the_trainer(tmp_path):
    lr = 0.002  # smallcnn_cpu.yaml's OPTIM.LR
    trainer = make_trainer(tmp_path, "VideoVanilla", "MODEL.VIT.LR_DECAY", "0.5", "MODEL.VIT.TRAIN_LAST_BLOCKS", "2")
    lr_of = {id(p): group["lr"] for group in trainer.optim.param_groups for p in group["params"]}
    vit = trainer.model.backbone.vit
    for i, block in enumerate(vit.blocks):  # L = 4 blocks: block i (0-based) at lr * 0.5^(4 - i); 0 and 1 frozen
        assert all(lr_of.get(id(p)) == (lr * 0.5 ** (4 - i) if i >= 2 else None) for p in block.parameters())
    assert id(vit.pos_embed) not in lr_of
    for module in (vit.norm, trainer.model.backbone.fc, trainer.model.head, trainer.model.classifier):
        assert all(lr_of[id(p)] == lr for p in module.parameters())

    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.set_model_mode("train")
    trainer.batch_idx, trainer.num_batches = 0, 2
    trainer.forward_backward(next(iter(trainer.train_loader_x)))
    after = trainer.model.state_dict()
    assert torch.equal(after["backbone.cnn.blocks.1.mlp.fc1.weight"], before["backbone.cnn.blocks.1.mlp.fc1.weight"])
    assert not torch.equal(after["backbone.cnn.blocks.3.mlp.fc1.weight"], before["backbone.cnn.blocks.3.mlp.fc1.weight"])
    trainer.sched.step()  # the schedule scales every group alike: the ratios stay
    ratios = sorted({round(g["lr"] / trainer.optim.param_groups[-1]["lr"], 6) for g in trainer.optim.param_groups})
    assert ratios == [0.25, 0.5, 1.0]


@pytest.mark.parametrize("frozen", [False, True])
def test_video_ada_takes_input_gradients_through_the_vit(apn, frozen):
    """One APN + ADA* maximisation through the ViT: finite, non-zero input gradients that move the clips; a
    frozen ViT (no weight gradients) still passes them."""
    data = next(iter(apn.train_loader_x))
    X, Y = data["img"], data["label"]
    params = list(apn.model.backbone.vit.parameters())
    for p in params:
        p.requires_grad_(not frozen)
    try:
        x = X.clone().requires_grad_(True)
        apn.set_model_mode("eval")
        R = apn.model.features(x, ["II"])["II"]
        (grad, ) = torch.autograd.grad(torch.nn.functional.cross_entropy(apn.model.classify(R), Y), x)
        apn.set_model_mode("train")
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0
        X_adv, log = apn.maximize(X, Y)
    finally:
        for p in params:
            p.requires_grad_(True)
    assert set(X_adv) == {"II", "III"}
    for level, x_adv in X_adv.items():
        assert torch.isfinite(x_adv).all() and not torch.equal(x_adv, X)
        assert torch.isfinite(log[f"max_loss_{level}"])


def test_one_apn_ada_star_step_on_a_vit_updates_it(apn):
    assert len(apn.optim.param_groups) == 1  # no MODEL.VIT.LR_DECAY: one learning rate
    before = {k: v.clone() for k, v in apn.model.backbone.state_dict().items()}
    apn.set_model_mode("train")
    apn.batch_idx, apn.num_batches = 0, 2
    log = apn.forward_backward(next(iter(apn.train_loader_x)))
    assert {"loss_src", "loss_adv_II", "loss_adv_III", "cost_II", "cost_III"} <= set(log)
    assert all(torch.isfinite(torch.tensor(v)) for v in log.values())
    after = apn.model.backbone.state_dict()
    assert not torch.equal(after["cnn.blocks.0.attn.qkv.weight"], before["cnn.blocks.0.attn.qkv.weight"])


def test_the_main_job_setting_trains_a_tiny_vit_for_one_epoch(tmp_path):
    """APN + ADA* with configs/trainers/APN/vit_cpu.yaml, one epoch, through train.py's main in this process."""
    out = str(tmp_path / "out")
    args = train.build_parser().parse_args(["--root", str(tmp_path / "data"), *SYNTHETIC_ARGS, "--trainer", "APN",
                                            "--config-file", VIT_CPU["APN"], "--output-dir", out, "--seed", "1",
                                            *TINY_SYNTHETIC, "OPTIM.MAX_EPOCH", "1"])
    train_in_process(args)
    with open(osp.join(out, "results.json")) as f:
        rows = {(row["split"], row["domain"]): row for row in json.load(f)}
    assert {("target", d) for d in ("street", "sketch", "glimpse", "pooled")} <= set(rows)
    assert all(0 <= row["accuracy"] <= 100 for row in rows.values())
    with open(osp.join(out, "log.txt")) as f:
        log = f.read()
    assert "Backbone: frame_vit_tiny" in log and "loss_adv_II" in log and "loss_adv_III" in log
    state = torch.load(osp.join(out, "model", "model.pth.tar-1"), weights_only=True)["state_dict"]
    assert "backbone.cnn.blocks.3.attn.qkv.weight" in state
