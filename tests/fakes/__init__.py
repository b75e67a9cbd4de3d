"""Scripted fakes for fault injection only (a crash, a stall, a server that ignores SIGTERM)."""
