"""Email port: the outbox writer (same transaction as the change) and the SMTP sender."""
