"""Where every LaTeX table of the harness sits on a two-column page: one rule for all table writers.

* A table whose tabular is wider than a column is a ``table*`` (both columns), otherwise a ``table``.
* The tabular is shrunk (graphicx's ``\\resizebox``) to the width of its float -- ``\\columnwidth``
  or ``\\textwidth`` -- only when it is still wider; LaTeX decides that when it compiles.
* No ``multirow``; the same comment at the top of every table names the packages it needs.

Which float a table gets is decided here, before LaTeX runs, from the tabular's natural width
estimated from its cells (Computer Modern at ``\\small``; ``tools/check_latex.py`` prints the
measured widths). ``preview_document`` is the two-column article that ``\\input``\\ s a folder's
tables (``tables.tex``).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, List, Sequence

from ..benchmark.store import write_atomic

PACKAGES = ("booktabs", "graphicx")
PACKAGES_COMMENT = ("% Needs \\usepackage{booktabs} and \\usepackage{graphicx} (\\resizebox). No multirow. "
                    "A table* when wider than\n% a column; the tabular is shrunk to the float's width only when still "
                    "wider.")
# The column of a plain two-column article (229.5 pt; ACL's is 219 pt, ACM's 241, IEEE's 252): wider tables span both.
COLUMN_WIDTH_PT = 230.0
PREVIEW = "tables.tex"

# Advance widths (pt) of Computer Modern Roman at 10 pt; tables are set in \small (cmr9), bold is ~15 % wider.
_LOWERCASE = (5.0, 5.56, 4.44, 5.56, 4.44, 3.06, 5.0, 5.56, 2.78, 3.06, 5.28, 2.78, 8.33, 5.56, 5.0, 5.56, 5.28, 3.92,
              3.94, 3.89, 5.56, 5.28, 7.22, 5.28, 5.28, 4.44)
_WIDTHS = {**dict(zip("abcdefghijklmnopqrstuvwxyz", _LOWERCASE)),
           **dict.fromkeys("0123456789/", 5.0), **dict.fromkeys(".,:;'![]", 2.78), **dict.fromkeys("()-", 3.6),
           **dict.fromkeys("IJ", 4.4), **dict.fromkeys("MW", 9.7), " ": 3.33, "+": 7.78, "=": 7.78}
_SMALL, _BOLD = 0.92, 1.15  # cmr9 is drawn ~2 % wider than cmr10 scaled to 9 pt
_SYMBOLS = {r"\downarrow": 10.0, r"\ast": 5.0, r"\dagger": 4.4, r"\S": 4.4, r"\&": 7.8, r"\%": 8.3}


def _char_width(ch: str) -> float:
    return _WIDTHS.get(ch, 7.3 if ch.isupper() else 5.0)


def text_width(cell: str) -> float:
    """Estimated width in pt of one cell's LaTeX text at ``\\small``: commands are dropped, their
    arguments kept; superscripts and a few symbols get fixed widths."""
    bold = sum(_plain_width(m) for m in re.findall(r"\\textbf\{([^{}]*)\}", cell))
    return _SMALL * (_plain_width(cell) + (_BOLD - 1) * bold)


def _plain_width(text: str) -> float:
    width = 0.0
    superscripts = re.findall(r"\^\{[^{}]*\}", text)
    text = re.sub(r"\^\{[^{}]*\}", "", text)
    width += 4.5 * len(superscripts)
    for symbol, symbol_width in _SYMBOLS.items():
        width += symbol_width * text.count(symbol)
        text = text.replace(symbol, "")
    text = re.sub(r"\\[A-Za-z]+\*?", "", text)
    text = re.sub(r"[{}$^_\\]", "", text)
    return width + sum(_char_width(ch) for ch in text)


def split_cells(row: str) -> List[str]:
    """The cells of one tabular row (``&`` not preceded by a backslash), without the trailing ``\\\\``."""
    row = row.strip()
    if row.endswith(r"\\"):
        row = row[:-2]
    return [c.strip() for c in re.split(r"(?<!\\)&", row)]


def natural_width(tabular: Sequence[str], tabcolsep_pt: float) -> float:
    """Estimated natural width in pt of a tabular (its lines, ``\\begin{tabular}`` to ``\\end``): per
    column the widest cell plus ``2 * tabcolsep``; ``\\multicolumn`` cells are left out."""
    widths: List[float] = []
    for line in tabular:
        if not line.rstrip().endswith(r"\\"):
            continue
        column = 0
        for cell in split_cells(line):
            span = re.match(r"\\multicolumn\{(\d+)\}", cell)
            if span:
                column += int(span.group(1))
                continue
            widths += [0.0] * (column + 1 - len(widths))
            widths[column] = max(widths[column], text_width(cell))
            column += 1
    return sum(w + 2 * tabcolsep_pt for w in widths)


def is_wide(tabular: Sequence[str], tabcolsep_pt: float) -> bool:
    """True when the tabular is wider than a column, so it goes in a ``table*``."""
    return natural_width(tabular, tabcolsep_pt) > COLUMN_WIDTH_PT


def float_table(tabular: Sequence[str], *, caption: str, label: str, tabcolsep_pt: float = 4.0) -> str:
    """A whole table file: the packages comment, then a ``table`` or ``table*`` (by :func:`is_wide`)
    holding the caption, the label and the tabular, shrunk to the float's width only when wider."""
    env, width = ("table*", r"\textwidth") if is_wide(tabular, tabcolsep_pt) else ("table", r"\columnwidth")
    return "\n".join([PACKAGES_COMMENT, rf"\begin{{{env}}}[t]", r"\centering", r"\small", rf"\caption{{{caption}}}",
                      rf"\label{{{label}}}", rf"\setlength{{\tabcolsep}}{{{tabcolsep_pt:g}pt}}",
                      rf"\resizebox{{\ifdim\width>{width}{width}\else\width\fi}}{{!}}{{%", *tabular, "}",
                      rf"\end{{{env}}}", ""])


def preamble() -> List[str]:
    """A plain two-column article with the packages every table needs."""
    return [r"\documentclass[twocolumn]{article}", *(rf"\usepackage{{{p}}}" for p in PACKAGES)]


def preview_document(table_files: Iterable[str]) -> str:
    """A two-column article that ``\\input``\\ s each table file (paths as LaTeX should read them)."""
    return "\n".join(["% Every table of this folder in a two-column article: pdflatex tables.tex", *preamble(),
                      r"\begin{document}", *(rf"\input{{{name}}}" for name in table_files), r"\end{document}", ""])


def table_files(folder: Path) -> List[Path]:
    """The table files of a results folder (every ``*.tex`` but the preview), sorted by name."""
    return sorted(p for p in Path(folder).glob("*.tex") if p.name != PREVIEW)


def write_preview(folder: Path) -> Path:
    """Write ``tables.tex`` beside the tables of ``folder``: one ``pdflatex tables.tex`` shows them all."""
    path = Path(folder) / PREVIEW
    write_atomic(path, preview_document(p.name for p in table_files(folder)).encode())
    return path
