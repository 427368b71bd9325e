"""Stage one: Reddit submissions → one row per outbound link with enough karma."""
