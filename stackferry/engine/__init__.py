"""The migration engine: export, plan, apply, verify. Written once; it knows no kind by name."""
