"""pytest-codeeval: benchmark code LLMs inside pytest."""

__version__ = "0.1.0"
