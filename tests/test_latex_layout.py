"""table1.tex / robustness.tex layout (fits a two-column page, no multirow, daggers per dataset against
the requested conditions, significance marks) and Figure 4's options; no training here."""
import re

import pandas as pd
import pytest

from dar_mmsa.benchmark.aggregate import METRICS, per_condition, table1
from dar_mmsa.benchmark.analysis import AVERAGE, significant_cells
from dar_mmsa.benchmark.robustness import robustness_table
from dar_mmsa.report import figures, latex

MODELS = {"dar": "DAR", "misa": "MISA"}


def records(rates=(0.0, 0.5), seeds=(1111, 1112), skip=()):
    rows = []
    for ds in ("mosi", "mosei"):
        for k, (model, display) in enumerate(MODELS.items()):
            for seed in seeds:
                for rate in rates:
                    if (model, ds, rate) in skip:
                        continue
                    row = {"data": "real", "model": model, "display_name": display, "dataset": ds, "seed": seed,
                           "protocol": "intra", "condition": f"intra-{rate}", "label": str(rate), "rate": rate,
                           "rate_text": rate, "rate_audio": rate, "rate_vision": rate}
                    row.update({m: 0.7 - 0.1 * k - 0.2 * rate + 0.001 * (seed - 1111) for m in METRICS})
                    row["MAE"] = 0.9 + 0.1 * k + 0.3 * rate
                    rows.append(row)
    return pd.DataFrame(rows)


def tex_of(frame, n_conditions=2, significant=None):
    table = table1(per_condition(frame, list(MODELS)), list(MODELS))
    return latex.table1_latex(table, synthetic=False, conditions="missing rates 0.0, 0.5", seeds=(1111, 1112),
                              n_conditions=n_conditions, significant=significant,
                              significance_note=" Significant lead.")


def body_rows(tex):
    body = tex[tex.index(r"\begin{tabular}"):tex.index(r"\end{tabular}")]
    return {line.split(" & ")[0]: line for line in body.splitlines() if line.endswith(r"\\") and " & " in line}


def test_fits_a_two_column_page_without_multirow():
    tex = tex_of(records())
    assert tex.startswith("% Needs \\usepackage{booktabs} and \\usepackage{graphicx}")
    assert r"\begin{table*}" in tex and r"\end{table*}" in tex and r"\multirow" not in tex
    assert r"\resizebox{\ifdim\width>\textwidth\textwidth\else\width\fi}{!}{%" in tex
    assert tex.index(r"\resizebox") < tex.index(r"\begin{tabular}") < tex.index(r"\end{tabular}") < \
        tex.rindex("}\n\\end{table*}")
    assert tex.count("{") == tex.count("}")
    assert "Method & Acc-7" in tex
    assert r"\usepackage{multirow}" not in latex.standalone_document(tex)


def test_dagger_per_dataset_against_the_requested_conditions():
    # MISA lacks rate 0.5 on MOSEI only: a dagger in its MOSEI group, none in its MOSI group or on DAR
    tex = tex_of(records(skip={("misa", "mosei", 0.5)}))
    misa = body_rows(tex)["MISA"].split(" & ")[1:]
    assert "dagger" not in "".join(misa[:6]) and misa[6].endswith(latex.INCOMPLETE_MARK)
    assert "dagger" not in body_rows(tex)["DAR"]
    assert "2 conditions and 2 seeds asked for" in tex
    # every row has both conditions, but three were asked for: every group is marked
    tex = tex_of(records(), n_conditions=3)
    assert body_rows(tex)["DAR"].count("dagger") == 2 and body_rows(tex)["MISA"].count("dagger") == 2
    assert "dagger" not in tex_of(records()).split(r"\begin{tabular}")[1]


def test_significance_marks_and_caption():
    tex = tex_of(records(), significant={("dar", "mosi", "Mult_acc_7"), ("dar", "mosi", "Non0_acc_2")})
    dar = body_rows(tex)["DAR"].split(" & ")[1:]
    assert dar[0] == r"\textbf{65.05}" + latex.SIGNIFICANT_MARK
    assert dar[2] == r"\textbf{65.05} / \textbf{65.05}" + latex.SIGNIFICANT_MARK
    assert latex.SIGNIFICANT_MARK not in body_rows(tex)["MISA"] and "Significant lead." in tex


def test_significant_cells_need_every_lead_above_zero():
    table = table1(per_condition(records(), list(MODELS)), list(MODELS))
    rows = [{"dataset": "mosi", "reference": "dar", "model": "misa", "condition": AVERAGE, "metric": m,
             "lead_low": 0.01 if m != "MAE" else -0.01} for m in METRICS]
    cells = significant_cells(pd.DataFrame(rows), table)
    assert ("dar", "mosi", "Mult_acc_7") in cells and ("dar", "mosi", "MAE") not in cells
    assert not any(ds == "mosei" for _, ds, _ in cells)


def test_robustness_tex_structure():
    per = per_condition(records(), list(MODELS))
    tex = latex.robustness_latex(robustness_table(per, baseline="misa"), synthetic=True, seeds=(1111, 1112))
    assert tex.startswith("% Needs") and r"\multirow" not in tex and tex.count("{") == tex.count("}")
    rows = body_rows(tex)
    assert set(rows) >= {"DAR", "MISA"}
    for row in (rows["DAR"], rows["MISA"]):
        assert len(re.split(r"(?<!\\)&", row)) == 1 + 8
    dar = [c.strip() for c in rows["DAR"][:-2].split(" & ")]
    # Non0 Acc-2 of DAR: 70.05 at r=0 and 60.05 at r=0.5 -> AUC / range = 65.05; ER vs MISA (same decay): 0;
    # 0.9 x 70.05 = 63.045 is crossed at 0.5 x (70.05 - 63.045) / (70.05 - 60.05) = 0.35
    assert dar[1:5] == ["70.05", r"\textbf{65.05}", "0.00", "0.35"]
    assert "MultiBench" in tex and "Synthetic data" in tex


@pytest.mark.skipif(not figures.matplotlib_available(), reason="matplotlib not installed")
def test_figure4_styles_legend_and_bands(tmp_path):
    from matplotlib.figure import Figure

    per = per_condition(records(), list(MODELS))
    saved = {}
    original = Figure.savefig

    def keep(fig, *args, **kwargs):
        saved["fig"] = fig
        return original(fig, *args, **kwargs)

    Figure.savefig = keep
    try:
        figures.figure4(per, tmp_path / "plain", synthetic=False)
        plain = saved["fig"]
        figures.figure4(per, tmp_path / "bands", synthetic=False, bands=True)
        banded = saved["fig"]
    finally:
        Figure.savefig = original
    axes = plain.axes
    assert len(axes) == 4  # 2 datasets x 2 metrics
    assert all(ax.get_legend() is None for ax in axes) and len(plain.legends) == 1
    styles = {(line.get_marker(), line.get_linestyle()) for line in axes[0].get_lines()}
    assert len(styles) == 2
    assert not any(ax.collections for ax in axes) and all(ax.collections for ax in banded.axes)


def test_compiles_without_overfull_boxes_in_a_two_column_page(tmp_path):
    """tools/check_latex.py on a MOSI+MOSEI table1.tex (with the reported block) and robustness.tex;
    skipped where no TeX engine is installed (CI installs none: pip only)."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex not installed")
    for package in ("booktabs.sty", "graphicx.sty", "geometry.sty"):
        if subprocess.run(["kpsewhich", package], capture_output=True).returncode != 0:
            pytest.skip(f"LaTeX package {package} not installed")
    per = per_condition(records(), list(MODELS))
    table = table1(per, list(MODELS))
    (tmp_path / "table1.tex").write_text(latex.table1_latex(
        table, synthetic=True, conditions="missing rates 0.0, 0.5", seeds=(1111, 1112), n_conditions=3,
        reported=latex.load_reported(("mosi", "mosei")), significant={("dar", "mosi", "Mult_acc_7")},
        significance_note=" Significant lead."))
    (tmp_path / "robustness.tex").write_text(latex.robustness_latex(robustness_table(per, baseline="misa"),
                                                                    synthetic=True, seeds=(1111, 1112)))
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve().parent.parent / "tools" / "check_latex.py"),
                           str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr + proc.stdout
