"""Package discovery (everything else is in pyproject.toml).

The terminal UI lives in the top-level folder ``tui/`` but imports as ``curalog_tui``;
pyproject's static ``packages.find`` cannot rename a folder, so the packages are found here:
every package under ``curalog/`` and every package under ``tui/``, renamed.
"""

from setuptools import find_packages, setup

core = find_packages(include=["curalog", "curalog.*"])
tui = ["curalog_tui"] + [f"curalog_tui.{name}" for name in find_packages("tui")]
setup(packages=core + tui, package_dir={"curalog_tui": "tui"})
