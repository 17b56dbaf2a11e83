"""Local facilities speaking the real wire protocols: SF API v1.2, FirecREST v2, IRI v1."""
