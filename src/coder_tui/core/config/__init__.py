"""Config: the schema, its fields, TOML positions, the loader and the one profile-flag table."""
