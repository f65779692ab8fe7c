"""The connector's own database: tokens, mappings, ledger, audit log, cursors, staged records."""
