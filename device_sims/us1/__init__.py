"""US-1 therapeutic ultrasound unit simulator (Modbus TCP), written from the ICD alone."""
