"""The REST API: one blueprint per resource, shared schemas and the error mapping."""
