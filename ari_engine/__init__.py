"""The Stasis engine: a thin ARI client, connection supervisor, call flows and presence."""
