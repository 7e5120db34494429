"""Does requirements.txt resolve to binary wheels on the platforms users train on?

    python tools/check_wheels.py                  # linux-aarch64 (GH200), macos-arm64, linux-x86_64
    python tools/check_wheels.py --targets macos-arm64

Each target is resolved with `uv pip compile --python-platform ... --only-binary :all:` (install uv with
`pip install uv`); nothing is installed. Why not pip's own `pip install --dry-run --platform ...`: pip
evaluates environment markers for the machine it runs on, not for the target, so on an x86-64 host it asks
for decord on aarch64 (our marker excludes it there) and, through torch's own markers, for the CUDA packages
on macOS. uv evaluates every marker, torch's included, for the target. It needs the package index.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGETS = {  # name: (uv's --python-platform, extra environment)
    "linux-aarch64": ("aarch64-unknown-linux-gnu", {}),
    # torch 2.14 ships macOS wheels for macOS 14+ (macosx_14_0_arm64); uv's default target is macOS 13.
    "macos-arm64": ("aarch64-apple-darwin", {"MACOSX_DEPLOYMENT_TARGET": "14.0"}),
    "linux-x86_64": ("x86_64-unknown-linux-gnu", {}),
}
SHOWN = ("torch", "torchvision", "decord", "av")  # the packages whose wheels differ between platforms


def check(target: str, requirements: str, python_version: str) -> bool:
    platform, env = TARGETS[target]
    with tempfile.TemporaryDirectory() as tmp:
        resolved = os.path.join(tmp, "resolved.txt")
        result = subprocess.run(
            ["uv", "pip", "compile", "--quiet", "--python-version", python_version, "--python-platform", platform,
             "--only-binary", ":all:", requirements, "-o", resolved],
            capture_output=True, text=True, env={**os.environ, **env})
        pins = []
        if result.returncode == 0:
            with open(resolved) as f:
                pins = [line.strip() for line in f if line.split("==")[0].strip() in SHOWN]
    print(f"{target:14s} {'OK  ' if result.returncode == 0 else 'FAIL'} {', '.join(pins)}")
    if result.returncode != 0:
        print("    " + result.stderr.strip().replace("\n", "\n    "))
    return result.returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser(description="Resolve requirements.txt to wheels for other platforms (uv)")
    parser.add_argument("--requirements", default=os.path.join(REPO, "requirements.txt"))
    parser.add_argument("--targets", nargs="+", choices=sorted(TARGETS), default=list(TARGETS))
    parser.add_argument("--python-version", default="3.11")
    args = parser.parse_args()
    if shutil.which("uv") is None:
        sys.exit("tools/check_wheels.py needs uv for its cross-platform resolver: pip install uv")
    ok = [check(t, args.requirements, args.python_version) for t in args.targets]
    sys.exit(0 if all(ok) else 1)


if __name__ == "__main__":
    main()
