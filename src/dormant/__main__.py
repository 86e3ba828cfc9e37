"""``python -m dormant``: the dormant command line."""

from .cli import run

run()
