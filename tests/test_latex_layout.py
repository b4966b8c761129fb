"""Every LaTeX table writer on a two-column page (one layout rule: table* when wider than a column,
shrunk to the float's width only when still wider, no multirow, the packages comment), Table 1's
daggers per dataset against the requested conditions and significance marks, the folder preview
``tables.tex``, and Figure 4's options; no training here."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from dar_mmsa.benchmark.aggregate import METRICS, SUBSET_COLUMNS, inter_table, per_condition, table1
from dar_mmsa.benchmark.analysis import AVERAGE, significant_cells
from dar_mmsa.benchmark.experiments import get_experiment
from dar_mmsa.benchmark.robustness import robustness_table
from dar_mmsa.report import experiment_tables, figures, latex, layout

REPO = Path(__file__).resolve().parent.parent

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


def variant_records(experiment):
    """DAR's rows of :func:`records` once per variant ("dar:<key>"), each variant 1 point lower."""
    dar = records()[lambda f: f["model"] == "dar"]
    frames = []
    for i, variant in enumerate(experiment.variants):
        rows = dar.assign(model=f"dar:{variant.key}", display_name=variant.label)
        rows[list(METRICS)] = rows[list(METRICS)] - 0.01 * i
        frames.append(rows)
    return pd.concat(frames, ignore_index=True)


def experiment_tex(name, with_reported=True, note=""):
    experiment = get_experiment(name)
    order = [f"dar:{v.key}" for v in experiment.variants]
    _, table = experiment_tables.experiment_table(variant_records(experiment), order, ["intra-0.0", "intra-0.5"])
    reported = experiment_tables.load_reported(experiment, ["mosi", "mosei"]) if with_reported else None
    return experiment_tables.experiment_latex(table, experiment, synthetic=True, conditions="missing rates 0.0, 0.5",
                                              seeds=(1111, 1112), reported=reported, note=note)


def subset_records():
    rows = []
    for k, (model, display) in enumerate(MODELS.items()):
        for j, label in enumerate(SUBSET_COLUMNS):
            row = {"data": "real", "model": model, "display_name": display, "dataset": "mosi", "seed": 1111,
                   "protocol": "subset", "condition": "subset-" + label.replace("+", ""), "label": label,
                   "rate": None, "rate_text": 0.0, "rate_audio": 0.0, "rate_vision": 0.0}
            row.update({m: 0.5 + 0.05 * k + 0.01 * j for m in METRICS})
            rows.append(row)
    return pd.DataFrame(rows)


def sims_table1_tex():
    """Table 1 with a CH-SIMS block beside MOSI (MMSA's SIMS metrics)."""
    rows = []
    for k, (model, display) in enumerate(MODELS.items()):
        base = {"model": model, "display_name": display, "n_conditions": 2, "min_seeds": 2}
        rows.append({**base, "dataset": "mosi", **{m: 0.7 - 0.1 * k for m in METRICS}})
        rows.append({**base, "dataset": "sims", "Mult_acc_2": 0.7 - 0.1 * k, "Mult_acc_3": 0.6 - 0.1 * k,
                     "Mult_acc_5": 0.4 - 0.1 * k, "F1_score": 0.7 - 0.1 * k, "MAE": 0.4 + 0.1 * k, "Corr": 0.5})
    return latex.table1_latex(pd.DataFrame(rows), synthetic=True, conditions="missing rates 0.0, 0.5",
                              seeds=(1111, 1112), n_conditions=2)


WRITERS = {
    "table1": lambda: tex_of(records()),
    "table1-marked": lambda: latex.table1_latex(
        table1(per_condition(records(), list(MODELS)), list(MODELS)), synthetic=True, n_conditions=3,
        conditions="missing rates 0.0, 0.5", seeds=(1111, 1112), reported=latex.load_reported(("mosi", "mosei")),
        significant={("dar", "mosi", "Mult_acc_7")}, significance_note=" Significant lead."),
    "table2": lambda: experiment_tex("ablation"),
    "table3": lambda: experiment_tex("train-rate"),
    "recipe": lambda: experiment_tex("recipe", with_reported=False),
    "inter": lambda: latex.inter_latex(inter_table(per_condition(subset_records(), list(MODELS)),
                                                   model_order=list(MODELS)), synthetic=False, seeds=(1111,)),
    "robustness": lambda: latex.robustness_latex(robustness_table(per_condition(records(), list(MODELS)),
                                                                  baseline="misa"), synthetic=True, seeds=(1111, 1112)),
    "sims": sims_table1_tex,
}
needs_sims = pytest.mark.skipif(not hasattr(latex, "table1_columns"), reason="Table 1 has no CH-SIMS block yet")
WRITER_PARAMS = [pytest.param(name, marks=needs_sims) if name == "sims" else name for name in WRITERS]


def placed(tex):
    """(float, width it is shrunk to, tabular lines, tabcolsep) of a table file, after checking that
    it is laid out by the one rule: packages comment, the float the estimate asks for, the tabular
    inside a \\resizebox to that float's width, no multirow, and every row as wide as the column spec."""
    lines = tex.splitlines()
    assert tex.startswith(layout.PACKAGES_COMMENT + "\n") and r"\multirow" not in tex
    assert tex.count("{") == tex.count("}") and tex.endswith("\n")
    start, end = lines.index(next(x for x in lines if x.startswith(r"\begin{tabular}"))), lines.index(r"\end{tabular}")
    tabular = lines[start:end + 1]
    sep = float(re.search(r"^\\setlength\{\\tabcolsep\}\{([\d.]+)pt\}$", tex, re.M).group(1))
    wide = layout.natural_width(tabular, sep) > layout.COLUMN_WIDTH_PT
    env, width = ("table*", r"\textwidth") if wide else ("table", r"\columnwidth")
    assert lines[2] == rf"\begin{{{env}}}[t]" and lines[-1] == rf"\end{{{env}}}"
    assert sum(x.startswith(r"\begin{table") for x in lines) == 1
    assert lines[start - 1] == rf"\resizebox{{\ifdim\width>{width}{width}\else\width\fi}}{{!}}{{%"
    assert lines[end + 1] == "}"
    n_columns = len(re.match(r"\\begin\{tabular\}\{([lcr]+)\}$", tabular[0]).group(1))
    for row in (x for x in tabular if x.endswith(r"\\")):
        spans = [int(m.group(1)) if m else 1
                 for m in (re.match(r"\\multicolumn\{(\d+)\}", c) for c in layout.split_cells(row))]
        assert sum(spans) == n_columns, row
    return env, width, tabular, sep


@pytest.mark.parametrize("writer", WRITER_PARAMS)
def test_every_writer_follows_the_layout_rule(writer):
    env, _, tabular, sep = placed(WRITERS[writer]())
    # these tables are all wider than a column (they overflowed one before the rule): table*
    assert env == "table*" and layout.natural_width(tabular, sep) > layout.COLUMN_WIDTH_PT


def test_experiment_tables_have_no_multirow_header_and_take_a_note():
    tex = experiment_tex("ablation", note=r"$^\dagger$Fewer seeds.")
    tabular = placed(tex)[2]
    assert tabular[2] == r" & \multicolumn{6}{c}{MOSI} & \multicolumn{6}{c}{MOSEI} \\"
    assert tabular[4].startswith("Variant & Acc-7 & Acc-5 & Acc-2 & F1 & ")
    assert re.search(r"\\caption\{[^\n]*Rows under ``reported'' [^\n]*\. \$\^\\dagger\$Fewer seeds\.\}\n", tex)
    assert placed(experiment_tex("train-rate"))[2][4].startswith("$k$ & Acc-7")


def test_text_and_natural_width_by_hand():
    # cmr10 widths x 0.92 (\small): digits 5.0, "." 2.78; bold 15 % wider; superscript 4.5
    assert layout.text_width("10.00") == pytest.approx(0.92 * 22.78)
    assert layout.text_width(r"\textbf{10.00}") == pytest.approx(0.92 * 22.78 * 1.15)
    assert layout.text_width(r"\underline{1}$^{\ast}$") == pytest.approx(0.92 * (5.0 + 4.5))
    assert layout.text_width(r"MAE$\downarrow$") == pytest.approx(0.92 * (9.7 + 7.3 + 7.3 + 10.0))
    tabular = [r"\begin{tabular}{lc}", r"\toprule", r"ab & 1 \\", r"\multicolumn{2}{l}{a row-wide label} \\",
               r"a & 22 \\", r"\bottomrule", r"\end{tabular}"]
    # column 1: "ab" = 5.0 + 5.56; column 2: "22" = 10.0; the \multicolumn row counts for neither; + 2 x 4 pt each
    assert layout.natural_width(tabular, 4) == pytest.approx(0.92 * 10.56 + 0.92 * 10.0 + 16)


def test_float_follows_the_width():
    narrow = [r"\begin{tabular}{lc}", r"\toprule", r"a & 1 \\", r"\bottomrule", r"\end{tabular}"]
    many = [r"\begin{tabular}{l" + "c" * 12 + "}", r"\toprule", " & ".join(["Model"] + ["12.34"] * 12) + r" \\",
            r"\bottomrule", r"\end{tabular}"]
    assert layout.natural_width(narrow, 4) < layout.COLUMN_WIDTH_PT < layout.natural_width(many, 4)
    env, width, _, _ = placed(layout.float_table(narrow, caption="c", label="tab:n"))
    assert (env, width) == ("table", r"\columnwidth")
    env, width, _, _ = placed(layout.float_table(many, caption="c", label="tab:m"))
    assert (env, width) == ("table*", r"\textwidth")


def test_preview_inputs_every_table_of_the_folder(tmp_path):
    for name in ("table1.tex", "robustness.tex", "inter_table.tex"):
        (tmp_path / name).write_text("% a table\n")
    (tmp_path / "table1.csv").write_text("not a table\n")
    path = layout.write_preview(tmp_path)
    assert path == tmp_path / "tables.tex"
    assert path.read_text() == "\n".join([
        "% Every table of this folder in a two-column article: pdflatex tables.tex",
        r"\documentclass[twocolumn]{article}", r"\usepackage{booktabs}", r"\usepackage{graphicx}",
        r"\begin{document}", r"\input{inter_table.tex}", r"\input{robustness.tex}", r"\input{table1.tex}",
        r"\end{document}", ""])
    assert layout.write_preview(tmp_path).read_text() == path.read_text(), "the preview never inputs itself"


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


def test_significant_cells_need_every_lead_significant_and_positive():
    table = table1(per_condition(records(), list(MODELS)), list(MODELS))
    rows = [{"dataset": "mosi", "reference": "dar", "model": "misa", "condition": AVERAGE, "metric": m,
             "lead": {"MAE": -0.01}.get(m, 0.01), "significant": m != "Corr"} for m in METRICS]
    cells = significant_cells(pd.DataFrame(rows), table)
    assert ("dar", "mosi", "Mult_acc_7") in cells
    assert ("dar", "mosi", "MAE") not in cells and ("dar", "mosi", "Corr") not in cells
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
    # 0.9 x 70.05 = 63.045 is crossed at 0.5 x (70.05 - 63.045) / (70.05 - 60.05) = 0.35;
    # no bold: an AUC is bold only for a significant lead, and no leads were computed here
    assert dar[1:5] == ["70.05", "65.05", "0.00", "0.35"]
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


def test_every_writer_compiles_in_a_two_column_article(tmp_path):
    """tools/check_latex.py on one file per writer and on the folder's tables.tex: no error, no
    overfull box, and LaTeX's natural width of each tabular within 3 % of the layout's estimate;
    skipped where no TeX engine is installed (CI installs none: pip only)."""
    if shutil.which("pdflatex") is None or shutil.which("kpsewhich") is None:
        pytest.skip("pdflatex not installed")
    for package in ("booktabs.sty", "graphicx.sty"):
        if subprocess.run(["kpsewhich", package], capture_output=True).returncode != 0:
            pytest.skip(f"LaTeX package {package} not installed")
    names = [n for n in WRITERS if n != "sims" or hasattr(latex, "table1_columns")]
    for name in names:
        (tmp_path / f"{name}.tex").write_text(WRITERS[name]())
    layout.write_preview(tmp_path)
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "check_latex.py"), str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert f"{len(names) + 1} of {len(names) + 1} file(s) compile" in proc.stdout
    widths = re.findall(r"natural width (\d+) pt \(estimated (\d+)\)", proc.stdout)
    assert len(widths) == len(names)
    for measured, estimated in widths:
        assert abs(int(estimated) - int(measured)) <= 0.03 * int(measured), proc.stdout
