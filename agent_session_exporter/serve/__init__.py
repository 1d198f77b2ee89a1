"""Serving: the session and self-metric families, the cached exposition, the guarded listener, the
HTTP app, its landing page and session links, and the web config (TLS, basic auth)."""
