"""Promotion: staging and production gates, the promotion ledger, rollback."""
