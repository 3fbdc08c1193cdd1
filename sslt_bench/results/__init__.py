"""Results: result records and everything that reads them.

``records`` (write, read, validate), ``aggregate`` and ``table`` (pandas aggregation),
``layout``, ``render``, ``render_csv`` and ``render_doc`` (text, CSV, Markdown, LaTeX),
``compare`` (paired comparisons), ``plots*`` and ``plot_style``, and ``paper`` (quoted
published numbers, kept apart from measured ones).
"""
