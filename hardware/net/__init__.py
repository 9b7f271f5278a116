"""Network serving: the bounded HTTP server and the connection gate in front of every TCP server."""
