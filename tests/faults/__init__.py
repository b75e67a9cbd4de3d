"""The fault suite: scripted faults, each checked for orphans, lost messages and the user text."""
