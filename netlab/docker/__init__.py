"""Real Docker: tasks run as real containers, and a real Swarm node read into the plan's shape."""
