"""curalog_tui: the Textual terminal UI of curalog (uses only curalog's public API)."""
