"""What every simulated facility shares: the batch system, the file tree, faults, /_sim."""
