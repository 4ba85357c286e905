"""The ``curalog`` command: one module per command group, :func:`main` the entry point."""

from curalog.cli.program import build_parser, main

__all__ = ["build_parser", "main"]
