"""The UI-free core: config, profiles, server control, demo model. Never imports textual or rich."""
