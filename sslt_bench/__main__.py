"""``python -m sslt_bench`` runs the CLI."""

from .cli.main import main

main()
