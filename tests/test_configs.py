"""Every shipped YAML merges into the project's config; names in them exist in the registries."""
import glob
import os.path as osp

import pytest

import yaml

import components
import train
from defaults import extend_cfg, merge_config_file, read_config_file
from framework import BACKBONE_REGISTRY, DATASET_REGISTRY, HEAD_REGISTRY, build_dataset, get_cfg_default
from tests.helpers import REPO

components.register_all()

CONFIGS = sorted(glob.glob(osp.join(REPO, "configs", "datasets", "*.yaml")) +
                 glob.glob(osp.join(REPO, "configs", "trainers", "*", "*.yaml")))


def test_every_dataset_of_this_project_has_a_config():
    """The merge test below runs over configs/datasets: it sees every dataset this project registers."""
    train.default_cfg()  # as train.py does: registers every component
    ours = {name for name in DATASET_REGISTRY.registered_names()
            if DATASET_REGISTRY.get(name).__module__.startswith("datasets.")}
    named = set()
    for path in CONFIGS:
        if osp.dirname(path).endswith(osp.join("configs", "datasets")):
            cfg = get_cfg_default()
            extend_cfg(cfg)
            merge_config_file(cfg, path)
            named.add(cfg.DATASET.NAME)
    assert "SyntheticVideoDG" in ours and named == ours


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: osp.relpath(p, REPO))
def test_config_merges_and_names_registered_components(path):
    cfg = get_cfg_default()
    extend_cfg(cfg)
    merge_config_file(cfg, path)  # unknown keys or wrong value types raise here
    if cfg.DATASET.NAME:
        assert cfg.DATASET.NAME in DATASET_REGISTRY.registered_names()
    if cfg.MODEL.BACKBONE.NAME:
        assert cfg.MODEL.BACKBONE.NAME in BACKBONE_REGISTRY.registered_names()
    if cfg.MODEL.HEAD.NAME:
        assert cfg.MODEL.HEAD.NAME in HEAD_REGISTRY.registered_names()


def test_unknown_dataset_lists_the_registered_ones():
    cfg = get_cfg_default()
    extend_cfg(cfg)
    cfg.DATASET.NAME = "UCF_HMDB"
    with pytest.raises(ValueError) as e:
        build_dataset(cfg)
    assert "UCFHMDB" in str(e.value) and "SyntheticVideoDG" in str(e.value)


def test_base_inheritance_resolves_relative_paths_and_later_files_win(tmp_path):
    (tmp_path / "base").mkdir()
    (tmp_path / "method").mkdir()
    (tmp_path / "base" / "a.yaml").write_text("OPTIM:\n  LR: 0.5\n  MAX_EPOCH: 7\nMODEL:\n  HEAD:\n    NAME: tsn\n")
    (tmp_path / "method" / "b.yaml").write_text("_BASE_: ../base/a.yaml\nOPTIM:\n  LR: 0.25\n")
    merged = read_config_file(str(tmp_path / "method" / "b.yaml"))
    assert merged == {"OPTIM": {"LR": 0.25, "MAX_EPOCH": 7}, "MODEL": {"HEAD": {"NAME": "tsn"}}}
    cfg = get_cfg_default()
    extend_cfg(cfg)
    merge_config_file(cfg, str(tmp_path / "method" / "b.yaml"))
    assert (cfg.OPTIM.LR, cfg.OPTIM.MAX_EPOCH, cfg.MODEL.HEAD.NAME) == (0.25, 7, "tsn")


def test_base_errors_name_the_file(tmp_path):
    (tmp_path / "loop.yaml").write_text("_BASE_: loop.yaml\n")
    with pytest.raises(ValueError, match="inherits from itself"):
        read_config_file(str(tmp_path / "loop.yaml"))
    (tmp_path / "orphan.yaml").write_text("_BASE_: missing.yaml\n")
    with pytest.raises(FileNotFoundError, match="orphan.yaml"):
        read_config_file(str(tmp_path / "orphan.yaml"))
    (tmp_path / "typo.yaml").write_text("OPTIM:\n  LEARNING_RATE: 1.0\n")
    cfg = get_cfg_default()
    extend_cfg(cfg)
    with pytest.raises(KeyError, match="OPTIM.LEARNING_RATE"):
        merge_config_file(cfg, str(tmp_path / "typo.yaml"))


def test_method_configs_hold_only_what_differs_from_their_base():
    """A method YAML that repeats a value its base (or the defaults) already sets is noise: refuse it."""
    defaults = get_cfg_default()
    extend_cfg(defaults)
    for path in glob.glob(osp.join(REPO, "configs", "trainers", "*", "*.yaml")):
        with open(path) as f:
            own = yaml.safe_load(f)
        assert "_BASE_" in own, f"{path} should inherit from a configs/base file"
        base = {}
        for b in [own["_BASE_"]] if isinstance(own["_BASE_"], str) else own["_BASE_"]:
            base.update(read_config_file(osp.join(osp.dirname(path), b)))

        def repeated(node, ref, dflt, prefix=""):
            for key, value in node.items():
                if key == "_BASE_":
                    continue
                if isinstance(value, dict):
                    yield from repeated(value, ref.get(key, {}), dflt.get(key, {}), prefix + key + ".")
                elif ref.get(key, dflt.get(key, object())) == value:
                    yield prefix + key
        assert not list(repeated(own, base, defaults)), f"{path} repeats {list(repeated(own, base, defaults))}"


def test_setup_cfg_returns_the_merged_result(tmp_path):
    args = train.build_parser().parse_args(["--config-file", "configs/trainers/APN/smallcnn_cpu.yaml",
                                            "--trainer", "APN", "--output-dir", str(tmp_path)])
    cfg = train.setup_cfg(args)
    assert cfg.MODEL.BACKBONE.NAME == "frame_smallcnn" and cfg.MODEL.HEAD.NAME == "apn_pyramid"
    assert cfg.TRAINER.APN.T_MAX == 3 and "_BASE_" not in cfg.dump()


def test_a_new_component_file_registers_itself_and_its_keys(tmp_path, monkeypatch):
    """The extension contract: a module in a package that uses import_submodules is found without editing
    any list, and its @config_defaults keys reach every config built afterwards."""
    package = tmp_path / "my_plugins"
    package.mkdir()
    (package / "__init__.py").write_text("from components import import_submodules\n"
                                         "import_submodules(__name__, __path__)\n")
    (package / "my_head.py").write_text(
        "import torch.nn as nn\n"
        "from defaults import CN, config_defaults\n"
        "from framework import HEAD_REGISTRY\n"
        "from models.video_net import reads_config\n"
        "@config_defaults\n"
        "def _defaults(cfg):\n"
        "    cfg.MODEL.MYHEAD = CN()\n"
        "    cfg.MODEL.MYHEAD.SCALE = 3\n"
        "class Scaled(nn.Module):\n"
        "    def __init__(self, in_features, scale):\n"
        "        super().__init__()\n"
        "        self.out_features, self.scale = in_features, scale\n"
        "    def forward(self, f):\n"
        "        return self.scale * f.mean(1)\n"
        "@HEAD_REGISTRY.register()\n"
        "@reads_config('MYHEAD')\n"
        "def contract_test_head(in_features=8, scale=1, **kwargs):\n"
        "    return Scaled(in_features, scale)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    importlib.import_module("my_plugins")
    cfg = get_cfg_default()
    extend_cfg(cfg)
    assert cfg.MODEL.MYHEAD.SCALE == 3
    cfg.MODEL.BACKBONE.NAME = "frame_smallcnn"
    cfg.MODEL.HEAD.NAME = "contract_test_head"
    cfg.MODEL.BACKBONE.FEATURE_DIM = 8
    cfg.MODEL.MYHEAD.SCALE = 5
    from models.video_net import VideoNet

    net = VideoNet(cfg, cfg.MODEL, num_classes=4)
    assert net.head.scale == 5  # the head read its own node
    import torch

    clips = torch.randn(2, 3, 3, 32, 32)
    net.eval()
    frames = net.frame_features(clips)
    assert frames.shape == (2, 3, 8)
    assert torch.allclose(net.logits_from_frame_features(frames), net(clips))
