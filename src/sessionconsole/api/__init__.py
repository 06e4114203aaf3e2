"""Local API between the controller and its clients: message models and the client."""
