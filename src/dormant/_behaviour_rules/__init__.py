"""Private pattern tables and parsers behind :mod:`dormant.behaviours`."""
