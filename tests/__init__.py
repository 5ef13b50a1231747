"""pivotlens tests; the package mirrors probes/ and analyses/ folder for folder."""

from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures"
