"""Use-cases: the operations the API, CLI and plugins call. Transactions live here."""
