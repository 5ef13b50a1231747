"""Statistics: pure functions of probe tables (no model runs, no files written)."""
