"""The dashboard's page, script and styles (served by broker/api/dashboard.py).

A package, so that they ship in the wheel (package-data)."""
