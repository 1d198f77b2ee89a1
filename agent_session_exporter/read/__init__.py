"""Reading an upstream: what a source is, the HTTP client, field readers, pagers, and one provider
per API turning pages into session records."""
