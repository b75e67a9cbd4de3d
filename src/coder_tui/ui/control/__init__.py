"""The App's helpers, one per concern, each handed the services it drives (no mixins).

``server.py`` starts, stops and restarts the managed server; ``profiles.py`` is the picker, the
swap, compare mode and the bench; ``fleet.py`` polls the remote servers; ``metrics.py`` runs the
sampler and feeds the exporter. They run their I/O in the App's workers and report through
messages to the App (``ui/messages.py``), which owns the serving state (``ui/serving.py``).
"""
