"""Sans-I/O codecs and register maps of the reference units."""
