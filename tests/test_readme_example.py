"""The README's "Adding a method" example works as printed: its trainer file and YAML, one epoch."""
import importlib.util
import json
import re

import train
from tests.helpers import REPO, SYNTHETIC_ARGS, TINY_SYNTHETIC, train_in_process


def readme_blocks(language: str) -> list:
    with open(f"{REPO}/README.md") as f:
        return re.findall(rf"```{language}\n(.*?)```", f.read(), flags=re.S)


def test_readme_trainer_and_yaml_train_one_epoch(data_root, tmp_path):
    code = next(b for b in readme_blocks("python") if b.startswith("# trainers/my_method.py"))
    yaml_text = next(b for b in readme_blocks("yaml") if b.startswith("# configs/trainers/MyMethod/"))
    module_path = tmp_path / "my_method.py"
    module_path.write_text(code)
    spec = importlib.util.spec_from_file_location("readme_my_method", module_path)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))  # registers MyMethod and its keys
    config = tmp_path / "smallcnn_cpu.yaml"  # the YAML as printed, its _BASE_ made absolute
    config.write_text(yaml_text.replace("../../base/", f"{REPO}/configs/base/"))
    out = tmp_path / "run"
    args = train.build_parser().parse_args([
        "--root", data_root, *SYNTHETIC_ARGS, "--trainer", "MyMethod", "--config-file", str(config),
        "--output-dir", str(out), "--seed", "1", *TINY_SYNTHETIC, "OPTIM.MAX_EPOCH", "1", "TRAIN.BF16", "True"])
    train_in_process(args)
    saved = (out / "config.yaml").read_text()
    assert "SMOOTHING: 0.2" in saved and "NAME: MyMethod" in saved
    rows = json.loads((out / "results.json").read_text())
    assert {row["domain"] for row in rows} >= {"studio", "street", "sketch", "glimpse", "pooled"}
    assert "loss" in (out / "log.txt").read_text()
