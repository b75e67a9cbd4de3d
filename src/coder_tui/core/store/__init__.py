"""Chat history in SQLite: schema and migrations, conversations, messages, the Markdown export."""
