"""SessionConsole: treatment-room console for combined manual, electro and ultrasound therapy."""

__version__ = "0.1.0"
