"""Test-side harnesses: what the integration tests and benchmarks run against
(a real Docker Swarm in ``netlab vm``), kept out of the shipped ``netlab`` package."""
