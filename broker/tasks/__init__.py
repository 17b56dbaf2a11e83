"""Background work on RQ: submission, cancel, status polls, health checks, and their schedule."""
