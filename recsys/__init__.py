"""recsys shared core: settings, logging, telemetry, data access and the generated API (recsys.v1)."""
