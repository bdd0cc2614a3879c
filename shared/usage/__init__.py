"""Token usage: the ledger, monthly limits and sums (SPEC 9 "Usage")."""
