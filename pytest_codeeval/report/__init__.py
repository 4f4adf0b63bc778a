"""Reports written at session end, on the controller only."""

from .writer import write_reports

__all__ = ["write_reports"]
