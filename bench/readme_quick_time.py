#!/usr/bin/env python
"""Wall time of the README's main command, ``python run_benchmark.py --quick``, from a fresh clone.

Clones this repository (its committed state: ``git clone``) into a temporary folder and runs the
README's command there with the Python running this script, which must already have the package's
dependencies (the install is excluded: it depends on the network and the pip cache). The clone's
own ``dar_mmsa`` is the one imported (the script's folder comes first on ``sys.path``). The clone's
committed ``results/synthetic-quick/`` is removed first: with its store the command would only
rebuild the reports, so the time is that of a first run that trains every model. Prints the
wall time and the CPU time (user + sys) of the command, and its "Learned?" lines.

    python bench/readme_quick_time.py                  # the README command as it is
    python bench/readme_quick_time.py --keep /tmp/q    # keep the clone and its results/
    python bench/readme_quick_time.py -- --seeds 1111  # extra arguments after --quick

``--with-install`` also times the README's install line (``pip install torch==2.13.0 && pip install
-e ".[test,plot]"``) in a fresh virtual environment, separately, before the run (needs the network).
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
INSTALL = ["pip install --quiet torch==2.13.0", "pip install --quiet -e '.[test,plot]'"]


def timed(command, cwd) -> tuple:
    """(wall s, CPU s of the children, stdout) of one command; exits on failure."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, stdout=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"error: {' '.join(map(str, command))} exited with {done.returncode}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep", metavar="DIR", help="clone into DIR (must not exist) and keep it")
    parser.add_argument("--with-install", action="store_true", help="also time the README's install line in a "
                        "fresh virtual environment (needs the network)")
    parser.add_argument("extra", nargs="*", help="arguments appended to the command (after --)")
    args = parser.parse_args(argv)
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="readme-quick-"))
    clone = root / "dar_mmsa" if not args.keep else root
    python = sys.executable
    try:
        subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
        if args.with_install:
            venv = root / "venv"
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            python = str(venv / "bin" / "python")
            wall, cpu, _ = timed(["sh", "-c", " && ".join(f"{python} -m {step}" for step in INSTALL)], clone)
            print(f"install (README's pip line, fresh venv): wall {wall:.1f} s, CPU {cpu:.1f} s")
        shutil.rmtree(clone / "results" / "synthetic-quick", ignore_errors=True)
        command = [python, "run_benchmark.py", "--quick", "--no-progress", *args.extra]
        wall, cpu, out = timed(command, clone)
        for line in out.splitlines():
            if line.startswith(("Learned?", "mosi ", "mosei ", "sims ")):
                print(line)
        print(f"README command (python run_benchmark.py --quick, fresh clone, install excluded): "
              f"wall {wall:.1f} s, CPU (user + sys) {cpu:.1f} s, {os.cpu_count()} CPUs")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
