"""Mean and spread over seed runs: reads <directory>/*/results.json (written at the end of every run).

    python parse_test_res.py output/synthetic_dg/studio/APN/smallcnn_cpu [--ci95]

Prints, for every split/domain row, accuracy and macro-F1 as mean +- std (population std, as Dassl's
parse_test_res.py) or +- the 95% confidence interval, over the run folders found.
"""
import argparse
import glob
import json
import os.path as osp
from collections import OrderedDict
from typing import Dict, List

import numpy as np
from tabulate import tabulate


def collect(directory: str) -> Dict[tuple, Dict[str, List[float]]]:
    files = sorted(glob.glob(osp.join(directory, "*", "results.json")))
    if not files:
        raise FileNotFoundError(f'No */results.json under "{directory}": pass the folder that holds the seed runs')
    table = OrderedDict()
    for path in files:
        with open(path) as f:
            for row in json.load(f):
                cell = table.setdefault((row["split"], row["domain"]), {"accuracy": [], "macro_f1": []})
                cell["accuracy"].append(row["accuracy"])
                cell["macro_f1"].append(row["macro_f1"])
    print(f"{len(files)} runs: " + ", ".join(osp.basename(osp.dirname(p)) for p in files))
    return table


def spread(values: List[float], ci95: bool) -> str:
    std = float(np.std(values))
    return f"{np.mean(values):.2f} +- {1.96 * std / np.sqrt(len(values)) if ci95 else std:.2f}"


def main(args) -> None:
    table = collect(args.directory)
    rows = [[split, domain, len(v["accuracy"]), spread(v["accuracy"], args.ci95), spread(v["macro_f1"], args.ci95)]
            for (split, domain), v in table.items()]
    print(tabulate(rows, headers=["split", "domain", "runs", "accuracy", "macro_f1"], tablefmt="github"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("directory", help="folder whose subfolders are runs (e.g. seed1, seed2, seed3)")
    parser.add_argument("--ci95", action="store_true", help="report the 95%% confidence interval, not the std")
    main(parser.parse_args())
