"""REST API controllers under /api/v1."""
