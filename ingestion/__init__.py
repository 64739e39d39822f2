"""Getting prices in: the bundled market history (and, with the ingestion pipeline, the pricing-API clients)."""
