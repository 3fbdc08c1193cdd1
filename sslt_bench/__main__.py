"""``python -m sslt_bench`` runs the CLI."""

from .cli import main

main()
