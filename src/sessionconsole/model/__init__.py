"""Pydantic vocabulary: therapy settings, device profiles, rooms, limits, telemetry."""
