"""``python -m analyses.cli`` is ``pivotlens``."""

from analyses.cli import main

main()
