"""LaTeX tables and figures from aggregated results (no training here)."""
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from dar_mmsa.benchmark.aggregate import METRICS, SUBSET_COLUMNS, inter_table, per_condition, rank_marks, table1
from dar_mmsa.report import figures, latex

MODELS = {"dar": "DAR", "misa": "MISA", "derl": "DERL-style (from the abstract)"}


def fake_records(datasets=("mosi", "mosei"), seeds=(1111, 1112), rates=(0.0, 0.5)):
    """Per-seed rows shaped like aggregate.records_frame; metric values chosen so ranks are known."""
    rows = []
    for ds in datasets:
        for k, (model, display) in enumerate(MODELS.items()):
            for seed in seeds:
                for rate in rates:
                    row = {"data": "synthetic", "model": model, "display_name": display, "dataset": ds, "seed": seed,
                           "protocol": "intra", "condition": f"intra-{rate}", "label": str(rate), "rate": rate,
                           "rate_text": rate, "rate_audio": rate, "rate_vision": rate}
                    # dar best, misa second on accuracies; MAE: derl best (lowest)
                    row.update({m: 0.5 + 0.1 * (2 - k) - 0.1 * rate + 0.001 * (seed - 1111) for m in METRICS})
                    row["MAE"] = 1.0 + 0.1 * (2 - k)
                    rows.append(row)
    return pd.DataFrame(rows)


def fake_subsets(datasets=("mosi",)):
    rows = []
    for ds in datasets:
        for k, (model, display) in enumerate(MODELS.items()):
            for j, label in enumerate(SUBSET_COLUMNS):
                row = {"data": "real", "model": model, "display_name": display, "dataset": ds, "seed": 1111,
                       "protocol": "subset", "condition": "subset-" + label.replace("+", ""), "label": label,
                       "rate": None, "rate_text": 0.0, "rate_audio": 0.0, "rate_vision": 0.0}
                row.update({m: 0.4 + 0.05 * k + 0.01 * j for m in METRICS})
                rows.append(row)
    return pd.DataFrame(rows)


def tabular_rows(tex):
    body = tex[tex.index(r"\begin{tabular}"):tex.index(r"\end{tabular}")]
    spec = re.match(r"\\begin\{tabular\}\{([^}]*)\}", body).group(1)
    rows = [line.strip()[:-2].strip() for line in body.splitlines() if line.strip().endswith(r"\\")]
    return len(spec), rows


def split_cells(row):
    return [c.strip() for c in re.split(r"(?<!\\)&", row)]


def cells_in(row):
    total = 0
    for cell in split_cells(row):
        span = re.match(r"\\multicolumn\{(\d+)\}", cell.strip())
        total += int(span.group(1)) if span else 1
    return total


def check_structure(tex):
    assert tex.count("{") == tex.count("}"), "unbalanced braces"
    depth = 0
    for ch in tex:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0
    for rule in (r"\toprule", r"\midrule", r"\bottomrule"):
        assert rule in tex
    n_cols, rows = tabular_rows(tex)
    for row in rows:
        assert cells_in(row) == n_cols, f"row has {cells_in(row)} cells, tabular {n_cols}: {row}"
    return n_cols, rows


@pytest.fixture(scope="module")
def table1_tex():
    per = per_condition(fake_records(), model_order=list(MODELS))
    table = table1(per, model_order=list(MODELS))
    return latex.table1_latex(table, synthetic=True, conditions="missing rates 0.0, 0.5", seeds=(1111, 1112),
                              reported=latex.load_reported(("mosi", "mosei")))


def test_table1_structure_and_layout(table1_tex):
    n_cols, rows = check_structure(table1_tex)
    assert n_cols == 13
    assert r"\multicolumn{6}{c}{MOSI}" in table1_tex and r"\multicolumn{6}{c}{MOSEI}" in table1_tex
    assert r"MAE$\downarrow$" in table1_tex and "Synthetic data" in table1_tex
    dar = next(r for r in rows if r.startswith("DAR &"))
    cells = split_cells(dar)[1:]
    assert len(cells) == 12
    assert re.fullmatch(r"\\textbf\{\d+\.\d\d\} / \\textbf\{\d+\.\d\d\}", cells[2]), "Acc-2 is Has0 / Non0, x100, 2 dp"
    assert re.fullmatch(r"\d\.\d{3}", cells[4]), "MAE: 3 decimals, dar is worst so unmarked"
    assert re.fullmatch(r"\\textbf\{0\.\d{3}\}", cells[5])


def test_best_bold_second_underlined(table1_tex):
    _, rows = tabular_rows(table1_tex)
    by_name = {split_cells(r)[0]: split_cells(r)[1:] for r in rows}
    assert by_name["DAR"][0].startswith(r"\textbf{") and by_name["MISA"][0].startswith(r"\underline{")
    assert "textbf" not in by_name["DERL-style (from the abstract)"][0]
    # MAE: lower is better, derl lowest
    assert by_name["DERL-style (from the abstract)"][4].startswith(r"\textbf{")
    assert by_name["MISA"][4].startswith(r"\underline{")
    # Acc-7 of dar at rates 0.0/0.5, seeds 1111/1112: mean of 0.7, 0.65 (+0.0005) -> 67.55
    assert by_name["DAR"][0] == r"\textbf{67.55}"


def test_reported_block(table1_tex):
    _, rows = tabular_rows(table1_tex)
    reported = [r for r in rows if "(reported)" in r]
    assert len(reported) == 9 and any(r.startswith("DAR (reported) & 34.47 & 38.65 & 71.60 / 73.18") for r in reported)
    assert not any("textbf" in r or "underline" in r for r in reported), "reported rows are not ranked"
    assert "Reported in the DAR paper" in table1_tex


def test_rank_marks_ties_and_missing():
    assert rank_marks([1.0, 3.0, 3.0, None, 2.0]) == ["", "best", "best", "", "second"]
    assert rank_marks([1.0, 3.0, 2.0], lower_is_better=True) == ["best", "", "second"]


def test_inter_table_has_eight_columns():
    per = per_condition(fake_subsets(("mosi", "mosei")), model_order=list(MODELS))
    table = inter_table(per, "Non0_acc_2", model_order=list(MODELS))
    assert list(table.columns[-8:]) == [*SUBSET_COLUMNS, "Avg"]
    np.testing.assert_allclose(table["Avg"], table[list(SUBSET_COLUMNS)].mean(axis=1))
    tex = latex.inter_latex(table, synthetic=False, seeds=(1111,))
    n_cols, rows = check_structure(tex)
    assert n_cols == 9
    header = next(r for r in rows if r.startswith("Method"))
    assert split_cells(header)[1:] == [*SUBSET_COLUMNS, "Avg"]
    derl = next(r for r in rows if r.startswith("DERL"))
    assert all(c.startswith(r"\textbf{") for c in split_cells(derl)[1:])


def test_latex_compiles(table1_tex, tmp_path):
    if shutil.which("pdflatex") is None or shutil.which("kpsewhich") is None:
        pytest.skip("pdflatex not installed")
    for package in ("booktabs.sty", "graphicx.sty"):
        if subprocess.run(["kpsewhich", package], capture_output=True).returncode != 0:
            pytest.skip(f"LaTeX package {package} not installed")
    per = per_condition(fake_subsets(), model_order=list(MODELS))
    inter = latex.inter_latex(inter_table(per, model_order=list(MODELS)), synthetic=True, seeds=(1111,))
    (tmp_path / "doc.tex").write_text(latex.standalone_document(table1_tex, inter))
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 0


def test_escape():
    assert latex.escape("a_b & 50%") == r"a\_b \& 50\%"
    assert split_cells(latex.escape("A & B") + " & 1") == [r"A \& B", "1"]


@pytest.mark.skipif(not figures.matplotlib_available(), reason="matplotlib not installed")
def test_figures_written(tmp_path):
    per = per_condition(pd.concat([fake_records(), fake_subsets()]), model_order=list(MODELS))
    files = figures.figure4(per, tmp_path / "figure4", synthetic=True)
    files += figures.inter_figure(per, tmp_path / "inter", synthetic=False)
    assert sorted(p.name for p in files) == ["figure4.pdf", "figure4.png", "inter.pdf", "inter.png"]
    assert all(p.stat().st_size > 1000 for p in files)
    assert not list(tmp_path.glob(".*.tmp"))
