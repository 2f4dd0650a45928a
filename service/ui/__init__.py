"""The dashboard at ``/ui``: server-rendered pages over the service's own JSON API."""
