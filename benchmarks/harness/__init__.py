"""The shared harness of the guards in ``benchmarks/``: what more than one guard needs.

- ``server``: the bench demo model's llama-server, its config, and one fixed-length request;
- ``terminal``: coder-tui (or nvitop) in a pseudo-terminal, its home, and the keys typed into it;
- ``watchers``: watchers kept for a whole run and stopped between their turns (Ctrl+Z);
- ``counters``: CPU and context switches of a process (and of the server) over a window;
- ``stats``: medians, percentiles, geometric means with a bootstrap interval;
- ``table``: the one Markdown table each guard prints, under its date, machine and command.

The guards import it as ``harness`` (``benchmarks/`` is on ``sys.path`` when a guard runs).
"""
