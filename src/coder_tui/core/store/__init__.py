"""Chat history in SQLite: schema and migrations, conversations and their owners, messages,
edits and alternatives, full-text search, the Markdown export, and a store that degrades."""
