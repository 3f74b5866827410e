"""The compliance officer's web app over the ledger (`ftaudit dashboard`)."""
