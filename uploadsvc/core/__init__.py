"""What every layer shares: configuration, the database and its models, logging, units."""
