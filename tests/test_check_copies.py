"""tools/check_copies.py, the project's copy check, on two tiny trees written here: it must find a copied
function whose statements were re-wrapped and a copied message, and pass what is allowed by design."""
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from tests.helpers import REPO

# The flag-to-key table: one text in both trees, since it matches Dassl's by design
RESET_CFG = '''
        def reset_cfg(cfg, args):
            if args.root:
                cfg.DATASET.ROOT = args.root
            if args.output_dir:
                cfg.OUTPUT_DIR = args.output_dir
            if args.trainer:
                cfg.TRAINER.NAME = args.trainer
        '''

THEIRS = {
    "lib/meters.py": '''
        class Meter:
            def update(self, val, n=1):
                if isinstance(val, float):
                    val = round(val, 6)
                self.val = val
                self.sum += val * n
                self.count += n
                self.avg = self.sum / self.count
                return self.avg


        def build(name, table):
            if name not in table:
                raise KeyError('Object name "{}" does not exist in "{}" registry'.format(name, "X"))
            return table[name]()
        ''',
    "lib/report.py": '''
        def report(acc, n):
            print("Finish training")
            print(f"* accuracy: {acc:.1f}%")
            print("total {}".format(n))
        ''',
    "tools/train.py": RESET_CFG,
}

OURS = {
    # the same statements, joined onto fewer lines, with a docstring and comments of our own
    "framework/meter.py": '''
        class RunningMean:
            """The mean of a stream of numbers."""

            def update(self, val, n=1):
                # floats are rounded first
                if isinstance(val, float): val = round(val, 6)
                self.val = val; self.sum += val * n; self.count += n
                self.avg = self.sum / self.count
                return self.avg
        ''',
    # theirs as an f-string, inside a longer sentence
    "framework/names.py": '''
        def lookup(key, table, where):
            try:
                return table[key]
            except KeyError:
                raise KeyError(f'Object name "{key}" does not exist in "{where}" registry; check it') from None
        ''',
    # written here: nothing to find
    "framework/own.py": '''
        def summarise(values):
            ordered = sorted(values)
            middle = len(ordered) // 2
            median = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
            return {"median": median, "spread": ordered[-1] - ordered[0], "size": len(ordered)}
        ''',
    "framework/log.py": '''
        def end_of_training(value, count):
            print("Finish training")
            print(f"* accuracy: {value:.2f}%")
            return {"accuracy": value, "count": count}
        ''',
    # the flag-to-key table matches theirs by design
    "train.py": RESET_CFG,
}


def _write(root, files):
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())


def _check(ours, theirs, *extra, env=None):
    return subprocess.run([sys.executable, os.path.join(REPO, "tools", "check_copies.py"), str(theirs),
                           "--ours", str(ours), *extra], capture_output=True, text=True, env=env)


@pytest.fixture
def trees(tmp_path):
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    _write(ours, OURS)
    _write(theirs, THEIRS)
    return ours, theirs


def test_finds_the_rewrapped_function_and_the_copied_message(trees):
    ours, theirs = trees
    proc = _check(ours, theirs, "--no-lines")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    copied = [line for line in lines if "framework/meter.py" in line]
    assert len(copied) == 1 and copied[0].startswith("1.00") and "RunningMean.update" in copied[0]
    assert "lib/meters.py" in copied[0] and "Meter.update" in copied[0] and "allowed" not in copied[0]
    message = [line for line in lines if line.startswith("text  framework/names.py")]
    assert len(message) == 1 and "lib/meters.py:" in message[0] and "does not exist in" in message[0]
    assert not any("framework/own.py" in line for line in lines)
    assert lines[-1].startswith("2 finding(s) to mend")


def test_passes_what_is_allowed_by_design(trees):
    ours, theirs = trees
    proc = _check(ours, theirs, "--no-lines")
    lines = proc.stdout.splitlines()
    table = [line for line in lines if "train.py" in line and "reset_cfg" in line]
    assert len(table) == 1 and "[allowed: flag-to-key table" in table[0]
    fields = [line for line in lines if line.startswith("text  framework/log.py")]
    assert len(fields) == 2 and all("[allowed: parse_test_res" in line for line in fields)
    # with the copies mended, only allowed rows remain and the check passes
    for rel in ("framework/meter.py", "framework/names.py"):
        (ours / rel).unlink()
    proc = _check(ours, theirs, "--no-lines")
    assert proc.returncode == 0, proc.stdout
    assert proc.stdout.splitlines()[-1].startswith("0 finding(s) to mend, 3 allowed")


def test_says_when_the_line_view_cannot_run(trees):
    ours, theirs = trees
    proc = _check(ours, theirs, env=dict(os.environ, PATH=os.devnull))
    assert "line runs: skipped (the `duplicates` tool or git is not on PATH)" in proc.stdout


def test_line_view_pairs_a_copied_block(trees):
    if shutil.which("duplicates") is None or shutil.which("git") is None:
        pytest.skip("the duplicates tool is not installed here; the line view is not available")
    ours, theirs = trees
    block = "".join(f"SETTING_{i} = compute_setting({i}, 'mode_{i}', scale={i * 3})\n" for i in range(8))
    (theirs / "lib" / "settings.py").write_text(block)
    (ours / "framework" / "settings.py").write_text("# ours\n" + block)
    proc = _check(ours, theirs)
    rows = [line for line in proc.stdout.splitlines() if "ours/framework/settings.py" in line]
    assert rows and "theirs/lib/settings.py" in rows[0] and "shape" not in rows[0]
    assert proc.returncode == 1
