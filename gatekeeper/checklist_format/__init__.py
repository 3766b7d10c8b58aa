"""Reading, validating and describing checklist files (YAML schema 1)."""
