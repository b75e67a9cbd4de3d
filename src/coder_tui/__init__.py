"""coder-tui: run, watch, compare and tune a local MoE coding model served by llama-server."""

__version__ = "0.1.0"
