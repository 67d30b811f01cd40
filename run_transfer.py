#!/usr/bin/env python
"""Stylise a photo: `python run_transfer.py --help`. The work is done by legacy_nst.cli."""
from legacy_nst.cli import entry_point

if __name__ == "__main__":
    entry_point()
