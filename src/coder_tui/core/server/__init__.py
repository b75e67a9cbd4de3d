"""Everything about one llama-server process: finding it, its flags, starting, watching, stopping."""
