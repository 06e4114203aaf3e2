"""Progress: one patient's pain and range of motion over sessions (`sessionconsole progress`)."""
