"""Server-rendered HTML pages for packages, at ghcr.io's URLs (read-only for now)."""
