"""Site adapters: one per facility protocol, behind one interface (``adapters.base.SiteAdapter``).

Nothing here imports from ``broker``."""
