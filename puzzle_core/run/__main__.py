"""``python -m puzzle_core.run --run-dir DIR [--config F] [--profile P] [--set k=v ...]``."""

from .cli import main

main()
