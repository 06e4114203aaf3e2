"""US-1 therapeutic ultrasound unit simulator (Modbus TCP and RTU), written from the ICD alone."""
