"""The REST API (API.md §1): controllers, auth, problem details."""
