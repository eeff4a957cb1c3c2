"""The triage knowledge base: schema, loading and validation."""
