"""The headless benchmark: built-in prompts, a fair runner, statistics, reports, a results store.

``runner.BenchRun`` yields typed progress events and ends with a ``types.BenchResult``;
``report`` renders results (the seed's Markdown table, JSON, CSV); ``store.BenchStore`` keeps them
in the history database. The CLI is ``coder_tui.cli.bench``; a TUI screen can drive ``BenchRun``
the same way. Nothing here imports Textual or rich.
"""
