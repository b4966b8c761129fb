#!/usr/bin/env python
"""Compile LaTeX tables in a two-column article; fail on an error or an overfull box above 2 pt.

    python tools/check_latex.py [PATH ...]        (default: results)

PATH: a ``.tex`` file or a folder (searched recursively). Each table file is compiled on its own
in the two-column article of ``dar_mmsa.report.layout`` (the packages its header comment names);
each whole document (a folder's ``tables.tex``) is compiled as it is, from its folder. Per file it
prints the float (``table`` or ``table*``), the tabular's natural width as LaTeX measures it (and as
the layout estimated it), the width it is set at, and the widest overfull box. Exit 0: everything
compiles, no overfull box above 2 pt; 1: an error or such a box; 2: no pdflatex or no ``.tex`` file.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from dar_mmsa.report import layout

TOLERANCE_PT = 2.0
# Logs the natural width of each \resizebox's content and the widths of the page, then resizes as usual.
MEASURE = [r"\makeatletter", r"\let\checkOriginalResizebox\resizebox",
           r"\renewcommand{\resizebox}[3]{\sbox\z@{#3}\typeout{CHECK natural=\the\wd\z@\space "
           r"column=\the\columnwidth\space text=\the\textwidth}\checkOriginalResizebox{#1}{#2}{#3}}", r"\makeatother"]
OVERFULL = re.compile(r"Overfull \\[hv]box \(([\d.]+)pt too (?:wide|high)\)")


def tex_files(paths):
    files = []
    for path in map(Path, paths):
        files += sorted(path.rglob("*.tex")) if path.is_dir() else [path] if path.suffix == ".tex" else []
    return files


def is_document(text: str) -> bool:
    return r"\documentclass" in text


def run_pdflatex(source: str, cwd: Path, out: Path) -> tuple:
    """(return code, log text) of compiling ``source`` (LaTeX text) with ``cwd`` as the working folder."""
    (out / "check.tex").write_text(source)
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", f"-output-directory={out}",
                           str(out / "check.tex")], cwd=cwd, capture_output=True, text=True, timeout=300)
    log = out / "check.log"
    return proc.returncode, log.read_text(errors="replace") if log.is_file() else proc.stdout


def check_file(path: Path, out: Path) -> tuple:
    """(ok, one line saying what was found) for one file."""
    text = path.read_text()
    if is_document(text):
        code, log = run_pdflatex(text, path.parent, out)
        what = "document"
    else:
        preamble = layout.preamble()
        body = [*preamble, *MEASURE, r"\begin{document}", "Text before the table.", text, r"\end{document}", ""]
        code, log = run_pdflatex("\n".join(body), path.parent, out)
        what = describe_table(text, log)
    if code != 0:
        error = next((line for line in log.splitlines() if line.startswith("!")), "pdflatex failed")
        return False, f"FAIL {path}: does not compile: {error}"
    overfull = [float(o) for o in OVERFULL.findall(log)]
    worst = max(overfull, default=0.0)
    status = "ok  " if worst <= TOLERANCE_PT else "FAIL"
    return worst <= TOLERANCE_PT, f"{status} {path}: {what}; widest overfull box {worst:.1f} pt"


def describe_table(text: str, log: str) -> str:
    """The float, natural width (measured / estimated), and the width it is set at."""
    env = "table*" if r"\begin{table*}" in text else "table"
    measured = re.search(r"CHECK natural=([\d.]+)pt column=([\d.]+)pt text=([\d.]+)pt", log)
    if measured is None:
        return f"{env}, no \\resizebox"
    natural, column, page = (float(x) for x in measured.groups())
    room = page if env == "table*" else column
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(r"\begin{tabular}"))
    end = next(i for i, line in enumerate(lines) if line.startswith(r"\end{tabular}"))
    sep = re.search(r"\\setlength\{\\tabcolsep\}\{([\d.]+)pt\}", text)
    estimate = layout.natural_width(lines[start:end + 1], float(sep.group(1)) if sep else 6.0)
    return (f"{env:6}, natural width {natural:.0f} pt (estimated {estimate:.0f}), set at "
            f"{min(natural, room):.0f} pt of {room:.0f} (scale {min(1.0, room / natural):.2f})")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    paths = argv or ["results"]
    files = tex_files(paths)
    if not files:
        print(f"error: no .tex file in {', '.join(paths)}: pass results folders or .tex files", file=sys.stderr)
        return 2
    if shutil.which("pdflatex") is None:
        print("error: pdflatex not found: install a TeX engine (apt-get install texlive-latex-base "
              "texlive-latex-recommended)", file=sys.stderr)
        return 2
    failed = 0
    for path in files:
        with tempfile.TemporaryDirectory() as tmp:
            ok, line = check_file(path, Path(tmp))
        print(line)
        failed += not ok
    print(f"{len(files) - failed} of {len(files)} file(s) compile in a two-column article with no overfull box "
          f"above {TOLERANCE_PT:g} pt")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
