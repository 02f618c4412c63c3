"""The ``lstmkit`` command line (:mod:`lstmkit.cli.app`); one module per command group."""

from lstmkit.cli.app import main

__all__ = ["main"]
