"""CX-3 combination unit (ultrasound + stimulation) simulator over a real MQTT broker."""
