"""Device drivers: transport I/O around the sans-I/O codecs of protocols/."""
