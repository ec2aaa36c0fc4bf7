"""Real Docker: read a real Swarm node (its Engine and its namespaces) into netlab's shapes."""
