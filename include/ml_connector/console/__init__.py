"""The ledger console's read side (queries over the ledger and the audit trail) and its few writes (resolve by
hand). The HTML lives in ``ml_connector.web.ledger_views`` / ``ledger_html``; nothing here imports FastAPI."""
