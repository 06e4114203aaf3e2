"""The session summary: per output settings, on-time, energy, alarms, pain, billing, export."""
