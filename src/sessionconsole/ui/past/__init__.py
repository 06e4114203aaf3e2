"""Past sessions: the record's list, a session's summary from its entries, exports."""
