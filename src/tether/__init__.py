"""tether: a WebSocket orchestration server for human-in-the-loop AI agents."""
