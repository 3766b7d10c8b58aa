"""Use cases: orchestrate domain rules, persistence and notifications. Never commit."""
