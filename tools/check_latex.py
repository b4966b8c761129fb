#!/usr/bin/env python
"""Compile a results folder's LaTeX tables in a two-column page and fail on errors or overfull boxes.

    python tools/check_latex.py results/synthetic-quick-table1

Puts ``table1.tex``, ``robustness.tex`` and ``inter_table.tex`` (those present) in a
``\\documentclass[twocolumn]{article}`` with the packages their header comments name (booktabs,
graphicx), runs ``pdflatex`` and reports each ``Overfull \\hbox`` (a table wider than its column or
page). Exit 0: compiled, nothing overfull; 1: an error or an overfull box; 2: no pdflatex (install
e.g. ``apt-get install texlive-latex-base texlive-latex-recommended``).
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

TABLES = ("table1.tex", "robustness.tex", "inter_table.tex")
PREAMBLE = [r"\documentclass[twocolumn]{article}", r"\usepackage{booktabs}", r"\usepackage{graphicx}",
            r"\usepackage[a4paper,margin=2cm]{geometry}"]


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    folder = Path(argv[0])
    tables = [folder / name for name in TABLES if (folder / name).is_file()]
    if not tables:
        print(f"error: no {', '.join(TABLES)} in {folder}", file=sys.stderr)
        return 1
    if shutil.which("pdflatex") is None:
        print("error: pdflatex not found: install a TeX engine (texlive-latex-base, texlive-latex-recommended)",
              file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        body = [r"\begin{document}", "Text before the tables.", *(t.read_text() for t in tables), r"\end{document}"]
        (Path(tmp) / "doc.tex").write_text("\n".join(PREAMBLE + body) + "\n")
        proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=tmp,
                              capture_output=True, text=True, timeout=300)
        log = (Path(tmp) / "doc.log").read_text(errors="replace") if (Path(tmp) / "doc.log").is_file() else proc.stdout
        if proc.returncode != 0:
            error = next((line for line in log.splitlines() if line.startswith("!")), "pdflatex failed")
            print(f"error: {', '.join(t.name for t in tables)} do not compile: {error}", file=sys.stderr)
            return 1
        overfull = re.findall(r"Overfull \\hbox \(([\d.]+)pt too wide\)", log)
        pages = re.search(r"Output written on doc\.pdf \((\d+) page", log)
    if overfull:
        print(f"error: overfull boxes ({', '.join(o + ' pt' for o in overfull)} too wide) in "
              f"{', '.join(t.name for t in tables)}", file=sys.stderr)
        return 1
    print(f"ok: {', '.join(t.name for t in tables)} compile in a two-column page "
          f"({pages.group(1) if pages else '?'} page(s)), no overfull box")
    return 0


if __name__ == "__main__":
    sys.exit(main())
