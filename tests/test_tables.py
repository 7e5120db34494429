"""parse_test_res.py on run folders the test writes: seed summary, mixed-setting refusal, paper layouts."""
import csv
import json
import os
import os.path as osp

import numpy as np
import pytest
import yaml

import parse_test_res

HEADS = {"TSN": ("VideoVanilla", "VideoADA", "tsn"), "APN": ("APN", "APN", "apn_pyramid")}


def write_run(path, trainer="APN", head="apn_pyramid", levels=None, source="ucf", targets=("hmdb",), seed=1,
              acc=None, epochs=20, finished=True):
    """A run folder as train.py leaves it: config.yaml, and results.json once finished."""
    os.makedirs(path, exist_ok=True)
    cfg = {"SEED": seed, "OUTPUT_DIR": str(path), "DATASET": {"ROOT": "data", "NAME": "UCFHMDB",
           "SOURCE_DOMAINS": [source], "TARGET_DOMAINS": list(targets)},
           "MODEL": {"BACKBONE": {"NAME": "frame_resnet50"}, "HEAD": {"NAME": head}},
           "OPTIM": {"MAX_EPOCH": epochs}, "TEST": {"FINAL_MODEL": "best_val"}, "TRAINER": {"NAME": trainer}}
    if levels is not None:
        cfg["TRAINER"][trainer.upper()] = {"LEVELS": levels, "T_MAX": 5}
    with open(osp.join(path, "config.yaml"), "w") as f:
        yaml.safe_dump(cfg, f)
    if finished:
        rows = [{"split": "source val", "domain": source, "n": 10, "accuracy": 90.0, "macro_f1": 89.0}]
        rows += [{"split": "target", "domain": t, "n": 50, "accuracy": acc + i, "macro_f1": acc - 1}
                 for i, t in enumerate(targets)]
        if len(targets) > 1:
            rows.append({"split": "target", "domain": "pooled", "n": 100, "accuracy": acc + 0.5, "macro_f1": acc})
        with open(osp.join(path, "results.json"), "w") as f:
            json.dump(rows, f)


def build_grid(root):
    """TSN and APN, without and with ADA, U->H and H->U, seeds 1 and 2; TSN + ADA on H->U never ran."""
    accs = {}
    for model, (erm, ada, head) in HEADS.items():
        for variant, trainer, levels in (("base", erm, "none" if erm == "APN" else None),
                                         ("ada", ada, "II+III" if ada == "APN" else "last_hidden")):
            for source, target in (("ucf", "hmdb"), ("hmdb", "ucf")):
                if model == "TSN" and variant == "ada" and source == "hmdb":
                    continue  # a missing cell
                for seed in (1, 2):
                    acc = 50.0 + 10 * (model == "APN") + 5 * (variant == "ada") + 3 * (source == "hmdb") + seed
                    accs[(model, variant, source, seed)] = acc
                    write_run(osp.join(root, source, model, variant, f"seed{seed}"), trainer=trainer, head=head,
                              levels=levels, source=source, targets=(target,), seed=seed, acc=acc)
    return accs


def test_paper_table_from_a_grid_with_a_missing_cell(tmp_path, capsys):
    build_grid(tmp_path)
    write_run(tmp_path / "ucf" / "APN" / "ada" / "seed3", levels="II+III", seed=3, finished=False)  # still running
    assert parse_test_res.main(["--table", "paper", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert "unfinished" in err and "seed3" in err
    with open(tmp_path / "table_paper.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["model", "U->H", "H->U", "average"]  # the paper's column order and names
    table = {r[0]: r[1:] for r in rows[1:]}
    assert list(table) == ["TSN (without / with ADA)", "APN (without / with ADA*)"]  # the paper's row order
    # APN on U->H: base seeds 61, 62 -> 61.50 +- 0.50; ADA* 66, 67 -> 66.50 +- 0.50, an improvement
    assert table["APN (without / with ADA*)"][0] == "61.50 +- 0.50 / 66.50 +- 0.50 \u2191"
    # average over tasks per seed: base (61 + 64) / 2, (62 + 65) / 2 -> 63.00 +- 0.50
    assert table["APN (without / with ADA*)"][2].startswith("63.00 +- 0.50 / 68.00 +- 0.50")
    # the run that never happened is "missing", never a zero, and so is the average it would enter
    assert table["TSN (without / with ADA)"][1] == "54.50 +- 0.50 / missing"
    assert table["TSN (without / with ADA)"][2] == "53.00 +- 0.50 / missing"
    assert "0.00" not in open(tmp_path / "table_paper.md").read()
    assert "| APN (without / with ADA*)" in out


def test_variants_table_rows_and_missing_variants(tmp_path):
    build_grid(tmp_path)
    for seed in (1, 2):  # APN + ADA (last hidden layer = R^III) on U->H only
        write_run(tmp_path / "ucf" / "APN" / "ada_III" / f"seed{seed}", levels="III", seed=seed, acc=70.0 + seed)
    out = str(tmp_path / "t2")
    assert parse_test_res.main(["--table", "variants", str(tmp_path), "--out", out]) == 0
    with open(out + ".csv") as f:
        table = {r[0]: r[1:] for r in list(csv.reader(f))[1:]}
    assert list(table) == ["TSN", "TSN + ADA", "TSN + ADA*", "APN", "APN + ADA", "APN + ADA*"]
    assert table["APN + ADA"] == ["71.50 +- 0.50", "missing", "missing", "2/0"]
    assert table["TSN + ADA*"][:3] == ["missing"] * 3


def test_cell_mixing_settings_is_refused_until_one_is_excluded(tmp_path, capsys):
    build_grid(tmp_path)
    # a 60-epoch control of APN without ADA lands in the same cell as the 20-epoch runs
    write_run(tmp_path / "ucf" / "APN_60ep" / "seed1", levels="none", seed=1, acc=70.0, epochs=60)
    assert parse_test_res.main(["--table", "paper", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "OPTIM.MAX_EPOCH=60" in err and "OPTIM.MAX_EPOCH=20" in err and "APN_60ep" in err
    assert parse_test_res.main(["--table", "paper", str(tmp_path), "--exclude", "APN_60ep"]) == 0


def test_per_target_columns_and_pooled_default(tmp_path):
    for seed in (1, 2):
        write_run(tmp_path / "studio" / f"seed{seed}", levels="II+III", source="studio",
                  targets=("street", "sketch"), seed=seed, acc=70.0 + 2 * seed)
    assert parse_test_res.main(["--table", "variants", str(tmp_path), "--out", str(tmp_path / "pooled")]) == 0
    with open(tmp_path / "pooled.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0][1] == "studio->street,sketch" and rows[3][1] == "73.50 +- 1.00"  # the pooled row
    assert parse_test_res.main(["--table", "variants", str(tmp_path), "--per-target",
                                "--out", str(tmp_path / "per")]) == 0
    with open(tmp_path / "per.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0][1:3] == ["studio->street", "studio->sketch"]
    assert rows[3][1:3] == ["73.00 +- 1.00", "74.00 +- 1.00"]


def test_seed_summary_reports_n_mean_std_and_each_seed(tmp_path, capsys):
    for seed, acc in ((1, 70.0), (2, 74.0), (3, 75.0)):
        write_run(tmp_path / f"seed{seed}", levels="II+III", seed=seed, acc=acc)
    write_run(tmp_path / "seed4", levels="II+III", seed=4, finished=False)
    assert parse_test_res.main([str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert "unfinished" in err and "seed4" in err
    line = next(row for row in out.splitlines() if "| target" in row)
    std = np.std([70.0, 74.0, 75.0])
    assert "| 3 |" in line.replace("  ", " ").replace("  ", " ") or " 3 " in line
    assert f"73.00 +- {std:.2f}" in line and "1: 70.00, 2: 74.00, 3: 75.00" in line


def test_seed_summary_refuses_a_folder_that_mixes_settings(tmp_path, capsys):
    write_run(tmp_path / "seed1", levels="II+III", seed=1, acc=70.0)
    write_run(tmp_path / "seed2", levels="II+III", seed=2, acc=72.0, epochs=2)  # a 2-epoch trial run
    assert parse_test_res.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "mixes 2 settings" in err and "OPTIM.MAX_EPOCH=2" in err and "OPTIM.MAX_EPOCH=20" in err
    assert parse_test_res.main([str(tmp_path), "--split-settings"]) == 0
    assert capsys.readouterr().out.count("== setting") == 2


def test_backbone_models_get_their_paper_rows():
    """TSM, I3D and Non-local run under the tsn head: the backbone names the row."""
    from analysis.tables import model_row

    assert model_row({"MODEL.BACKBONE.NAME": "i3d_resnet50", "MODEL.HEAD.NAME": "tsn"})[0] == "I3D"
    assert model_row({"MODEL.BACKBONE.NAME": "nonlocal_resnet_small", "MODEL.HEAD.NAME": "tsn"})[0] == "Non-local"
    assert model_row({"MODEL.BACKBONE.NAME": "frame_resnet50_tsm", "MODEL.HEAD.NAME": "tsn"})[0] == "TSM"
    assert model_row({"MODEL.BACKBONE.NAME": "frame_resnet50", "MODEL.HEAD.NAME": "trn"})[0] == "TRN"


def test_vit_frame_encoders_get_rows_of_their_own():
    """A model on a ViT sits beside the same model on the setting's CNN in one grid."""
    from analysis.tables import model_row

    assert model_row({"MODEL.BACKBONE.NAME": "frame_vit_b16_clip", "MODEL.HEAD.NAME": "apn_pyramid"})[:2] == (
        "APN (CLIP ViT-B/16)", "ADA*")
    assert model_row({"MODEL.BACKBONE.NAME": "frame_vit_tiny", "MODEL.HEAD.NAME": "tsn"})[0] == "TSN (ViT-tiny)"
    assert model_row({"MODEL.BACKBONE.NAME": "frame_smallcnn", "MODEL.HEAD.NAME": "tsn"})[0] == "TSN"


def test_equal_means_get_no_arrow():
    from analysis.tables import Cell, pair_text

    same = pair_text(Cell({1: 12.5, 2: 12.5}, []), Cell({1: 12.5, 2: 12.5}, []), 1)
    assert "\u2191" not in same and "\u2193" not in same
    assert pair_text(Cell({1: 10.0}, []), Cell({1: 20.0}, []), 1).endswith("\u2191")


def test_mixstyle_runs_get_their_own_row():
    """MixStyle is an encoder option of any trainer: VideoVanilla + MixStyle must not share ERM's cell."""
    from analysis.runs import Run
    from analysis.tables import describe_run

    def key(trainer, layers, levels=None):
        config = {"TRAINER.NAME": trainer, "MODEL.HEAD.NAME": "apn_pyramid", "MODEL.BACKBONE.MIXSTYLE.LAYERS": layers,
                  "DATASET.SOURCE_DOMAINS": ["a", "b"], "DATASET.TARGET_DOMAINS": ["c"]}
        if levels:
            config[f"TRAINER.{trainer.upper()}.LEVELS"] = levels
        return describe_run(Run(path="x", config=config, results=None))

    assert key("VideoVanilla", [])[1] == "base" and key("VideoVanilla", ["conv1"])[1] == "MixStyle"
    assert key("APN", ["conv1"], "II+III")[1] == "ADA* + MixStyle"
    assert key("VideoCrossGrad", ["conv1"])[1] == "VideoCrossGrad + MixStyle"


def test_grid_figure_is_drawn_with_the_table_and_needs_a_grid(tmp_path, capsys):
    from PIL import Image

    from analysis.figures import plot_grid_table

    build_grid(tmp_path)
    png = str(tmp_path / "grid.png")
    assert parse_test_res.main(["--table", "variants", str(tmp_path), "--figure", png, "--chance", "50"]) == 0
    assert f"Figure written to {png}" in capsys.readouterr().out
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size[1] > 200
        image.verify()
    with pytest.raises(SystemExit):  # a figure of one folder's seeds is not a grid
        parse_test_res.main([str(tmp_path / "ucf" / "APN" / "ada"), "--figure", png])
    assert "use them with --table" in capsys.readouterr().err
    with pytest.raises(ValueError, match="no finished cell"):  # rows that never ran are not drawn as zeros
        plot_grid_table([("TSN + ADA*", [None, None], None)], ["U->H", "H->U"], png, xlabel="accuracy")
