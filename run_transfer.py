#!/usr/bin/env python
"""Stylise a photo: `python run_transfer.py --help`. The work is done by legacy_nst.ui.cli."""
from legacy_nst.ui.cli import entry_point

if __name__ == "__main__":
    entry_point()
