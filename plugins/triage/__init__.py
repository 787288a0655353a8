"""Built-in triage plugins: classification rules and enrichment (directory VIP, CSV CRM)."""
