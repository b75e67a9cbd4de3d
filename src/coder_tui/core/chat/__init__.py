"""Chat with llama-server: the client, SSE, streamed and whole replies, pacing, and one whole turn."""
