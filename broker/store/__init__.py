"""Everything superfed keeps in Redis: jobs and their indexes, sites, health, tokens."""
