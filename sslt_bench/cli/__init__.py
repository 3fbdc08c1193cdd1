"""The ``sslt-bench`` command line.

``main`` (run, sweep, list), ``results`` (table, compare, plot), ``splits`` and ``common``
(shared options and helpers).
"""
