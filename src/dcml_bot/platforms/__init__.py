"""Chat platforms: the only place that talks to SDKs (and the built-in local platform)."""
