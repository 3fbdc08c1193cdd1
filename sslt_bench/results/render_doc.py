r"""Document formats of ``sslt-bench table``: a LaTeX (booktabs) fragment and a static HTML page.

LaTeX: ``\begin{tabular}`` ... ``\end{tabular}`` with ``\toprule``/``\midrule``/
``\bottomrule`` (needs ``\usepackage{booktabs}``), one ``\multicolumn`` group per data set
variant, the best measured mean of each column in bold (ties all bold; quoted paper rows are
set apart below a rule, in italics, and never compete for bold). Notes become ``%`` comments.
HTML: one self-contained, well-formed page (parses as XML) with the table, notes, provenance
and failed runs. Both are deterministic (no dates).
"""

from __future__ import annotations

import html

from .layout import FAILED_HEAD, PROV_HEAD, best_means, cell, failed_rows, is_best, provenance
from .paper import QUOTED
from .table import Board

_TEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def tex_escape(text: str) -> str:
    """Escape LaTeX special characters."""
    return "".join(_TEX.get(ch, ch) for ch in str(text))


def latex(board: Board) -> str:
    """A booktabs tabular fragment for pasting into a paper."""
    head = board.head
    ncol = 3 + len(head) * len(board.columns)
    best = {col: best_means(board.lines, col, board.metrics) for col, _ in board.columns}
    out = [
        "% sslt-bench table: accuracy in %, mean $\\pm$ std over seeds",
        "% needs \\usepackage{booktabs}",
        "\\begin{tabular}{lll" + ("r" * len(head)) * len(board.columns) + "}",
        "\\toprule",
    ]
    groups = [f"\\multicolumn{{{len(head)}}}{{c}}{{{tex_escape(lab)}}}" for _, lab in board.columns]
    out.append(" & & & " + " & ".join(groups) + " \\\\")
    out.append(
        " ".join(
            f"\\cmidrule(lr){{{4 + i * len(head)}-{3 + (i + 1) * len(head)}}}"
            for i in range(len(board.columns))
        )
    )
    names = ["$n$", *(tex_escape(m.capitalize()) for m in board.metrics)] * len(board.columns)
    out += ["Method & Profile & Backbone & " + " & ".join(names) + " \\\\", "\\midrule"]
    quoted_started = False
    for ln in board.lines:
        if ln.quoted and not quoted_started:
            quoted_started = True
            out += ["\\midrule", f"\\multicolumn{{{ncol}}}{{l}}{{\\textit{{{QUOTED}}}}} \\\\"]
        cells = []
        for col, _ in board.columns:
            for h in head:
                text = tex_escape(cell(ln, col, h)).replace("±", "$\\pm$")
                if ln.quoted:
                    text = f"\\textit{{{text}}}" if text else text
                elif is_best(ln, col, h, best[col]):
                    text = f"\\textbf{{{text}}}"
                cells.append(text)
        name = tex_escape(ln.label)
        out.append(
            f"{name} & {tex_escape(ln.profile)} & {tex_escape(ln.backbone)} & "
            + " & ".join(cells)
            + " \\\\"
        )
    out += ["\\bottomrule", "\\end{tabular}"]
    out += [f"% Note: {n}" for n in board.notes]
    out += [f"% failed run (not averaged): {' '.join(map(str, r[:5]))}" for r in failed_rows(board)]
    return "\n".join(out) + "\n"


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _html_table(head: list[str], body: list[list], cls: str) -> list[str]:
    out = [f'<table class="{cls}">', "<thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head)]
    out[-1] += "</tr></thead>"
    out.append("<tbody>")
    out += ["<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in body]
    return [*out, "</tbody>", "</table>"]


_CSS = (
    "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
    "th,td{border:1px solid #bbb;padding:.25em .6em;text-align:right}"
    "td:first-child,th:first-child{text-align:left}tr.quoted td{font-style:italic;color:#555}"
    "td.best{font-weight:bold}p.note{color:#a40}"
)


def html_page(board: Board, title: str = "sslt-bench results") -> str:
    """A static, well-formed HTML page: table, notes, provenance, failed runs."""
    best = {col: best_means(board.lines, col, board.metrics) for col, _ in board.columns}
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        f'<head><meta charset="utf-8"/><title>{_e(title)}</title><style>{_CSS}</style></head>',
        "<body>",
        f"<h1>{_e(title)}</h1>",
        "<p>Accuracy in %, mean ± std over seeds (n = number of seeds). "
        f"Rows marked “{_e(QUOTED)}” are published numbers, not measured here.</p>",
        '<table class="board">',
        "<thead>",
        '<tr><th rowspan="2">method</th><th rowspan="2">profile</th><th rowspan="2">backbone</th>'
        + "".join(f'<th colspan="{len(board.head)}">{_e(lab)}</th>' for _, lab in board.columns)
        + "</tr>",
        "<tr>" + "".join(f"<th>{_e(h)}</th>" for _ in board.columns for h in board.head) + "</tr>",
        "</thead>",
        "<tbody>",
    ]
    for ln in board.lines:
        tds = []
        for col, _ in board.columns:
            for h in board.head:
                cls = ' class="best"' if is_best(ln, col, h, best[col]) else ""
                tds.append(f"<td{cls}>{_e(cell(ln, col, h))}</td>")
        row_cls = ' class="quoted"' if ln.quoted else ""
        out.append(
            f"<tr{row_cls}><td>{_e(ln.label)}</td><td>{_e(ln.profile)}</td>"
            f"<td>{_e(ln.backbone)}</td>" + "".join(tds) + "</tr>"
        )
    out += ["</tbody>", "</table>"]
    out += [f'<p class="note">Note: {_e(n)}</p>' for n in board.notes]
    if board.rows:
        out.append("<h2>Provenance</h2>")
        out += _html_table(PROV_HEAD, provenance(board), "provenance")
    if board.failed:
        out.append("<h2>Failed runs (not averaged)</h2>")
        out += _html_table(FAILED_HEAD, failed_rows(board), "failed")
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"
