"""superfed's broker: the API, the job lifecycle, placement, health, the store, the CLI."""
