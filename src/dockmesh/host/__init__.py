"""Facts and metrics about the machine this process runs on (used by the agent and the local host)."""
