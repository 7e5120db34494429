"""The prepared GPU check (run it as `bash scripts/gpu_check.sh [OUTPUT_DIR]`; docs/performance.md, "The GPU
check"). On a CUDA machine it runs, each part under its own time limit so that the whole check fits in
BUDGET_S (8 minutes on one H200):

    cuda_tests          the tests that need CUDA (tests/test_cuda.py: steps on the GPU, compile, memory)
    benchmark_fp32      scripts/benchmark.py --preset paper (ResNet-50, M=5, 224x224, batch 40), fp32
    benchmark_bf16_cl   the same with --bf16 --channels-last
    benchmark_compile   APN + ADA* with --bf16 --channels-last and TRAIN.COMPILE
    torchrun_main_job   the main job for 1 epoch under torchrun, one process per visible GPU

and writes OUTPUT_DIR/gpu_check.json: the GPU's name and count, torch and CUDA versions, and per part its
exit code, seconds, whether it ran out of time, the end of its output and the numbers it wrote. A part that
fails or times out is recorded and the check goes on; the exit code is non-zero if any part did not pass.
Without CUDA it stops at once with exit code 2 and says what it needs.
"""
import argparse
import json
import os
import os.path as osp
import platform
import signal
import subprocess
import sys
import time
from typing import List, NamedTuple, Optional

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
BUDGET_S = 480  # the whole check on one H200
PAPER = ["scripts/benchmark.py", "--preset", "paper", "--device", "cuda", "--steps", "3"]
MAIN_JOB = ["train.py", "--root", "data", "--trainer", "APN", "--dataset-config-file",
            "configs/datasets/synthetic_dg.yaml", "--config-file", "configs/trainers/APN/smallcnn_cpu.yaml",
            "--source-domains", "studio", "--target-domains", "street", "sketch", "glimpse", "--seed", "1"]


class Part(NamedTuple):
    name: str
    budget_s: int
    argv: List[str]
    result_json: Optional[str]  # a file the command writes its numbers to


def benchmark(name: str, budget_s: int, out: str, *options: str) -> Part:
    result = osp.join(out, f"{name}.json")
    return Part(name, budget_s, [sys.executable, *PAPER, *options, "--json", result], result)


def plan(out: str, gpus: int) -> List[Part]:
    """The parts in order. The limits are estimates for one H200 (never measured: no GPU was lent to the session
    that wrote this): the first benchmark part also generates the synthetic benchmark under data/ (the later
    parts reuse it), the compile part pays inductor's warm-up."""
    py = sys.executable
    return [
        Part("cuda_tests", 100, [py, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "tests/test_cuda.py"],
             None),
        benchmark("benchmark_fp32", 115, out, "--warmup", "1"),
        benchmark("benchmark_bf16_cl", 85, out, "--warmup", "1", "--bf16", "--channels-last"),
        # every pass of a step compiles in the first warm-up step
        benchmark("benchmark_compile", 90, out, "--warmup", "3", "--bf16", "--channels-last", "--compile",
                  "--variants", "APN+ADA*"),
        Part("torchrun_main_job", 60, [py, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(gpus),
                                       *MAIN_JOB, "--output-dir", osp.join(out, "main_job"), "OPTIM.MAX_EPOCH", "1",
                                       "USE_CUDA", "True"], None),
    ]


def run_part(part: Part, cwd: str = REPO) -> dict:
    """Run one part under its time limit; what it did, for the JSON. A part runs in a process group of its own, so
    that at its limit its children stop with it (torchrun's workers left running would hold the GPU through the
    next part)."""
    started = time.perf_counter()
    proc = subprocess.Popen(part.argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=part.budget_s)
        rc, timed_out = proc.returncode, False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        try:
            output, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:  # a grandchild that left the group still holds the pipe
            output = "(no output: a process of this part outlived it and kept its output open)"
        rc, timed_out = None, True
    record = {"budget_s": part.budget_s, "seconds": round(time.perf_counter() - started, 1), "rc": rc,
              "timed_out": timed_out, "passed": rc == 0, "command": " ".join(part.argv[1:]),
              "output_tail": output[-4000:]}
    if part.result_json and osp.isfile(part.result_json):
        with open(part.result_json) as f:
            record["result"] = json.load(f)
    return record


def cuda_or_exit():
    """The GPUs, or exit 2 with what the check needs."""
    import torch

    if not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        print(f"scripts/gpu_check.sh needs a CUDA GPU: torch.cuda.is_available() is False here (torch "
              f"{torch.__version__}, {build}). Run it on a machine with an NVIDIA GPU and a CUDA build of torch; "
              "without one, `python scripts/benchmark.py --cost` and the test suite are the checks.", file=sys.stderr)
        sys.exit(2)
    return torch


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output_dir", nargs="?", default="output/gpu_check")
    parser.add_argument("--dry-run", action="store_true", help="print the parts and their time limits only")
    args = parser.parse_args(argv)
    out = osp.abspath(args.output_dir)
    if args.dry_run:
        for part in plan(out, gpus=1):
            print(f"{part.name:20s} {part.budget_s:4d} s  {' '.join(part.argv[1:])}")
        print(f"total {sum(p.budget_s for p in plan(out, 1))} s of a {BUDGET_S} s budget")
        return 0
    torch = cuda_or_exit()
    os.makedirs(out, exist_ok=True)
    gpus = torch.cuda.device_count()
    report = {"gpu": torch.cuda.get_device_name(0), "gpu_count": gpus, "torch": torch.__version__,
              "cuda": torch.version.cuda, "host": platform.node(), "budget_s": BUDGET_S, "parts": {}}
    started = time.perf_counter()
    for part in plan(out, gpus):
        print(f"[gpu_check] {part.name} (at most {part.budget_s} s) ...", flush=True)
        report["parts"][part.name] = record = run_part(part)
        print(f"[gpu_check] {part.name}: {'passed' if record['passed'] else 'FAILED'} in {record['seconds']} s"
              + (" (out of time)" if record["timed_out"] else ""), flush=True)
    report["total_s"] = round(time.perf_counter() - started, 1)
    path = osp.join(out, "gpu_check.json")
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
    print(f"[gpu_check] {report['gpu']} x {gpus}: {report['total_s']} s; wrote {path}")
    return 0 if all(r["passed"] for r in report["parts"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
