"""What a GGUF file holds and what it costs in memory: layout, KV cache, compute buffer, profile facts."""
