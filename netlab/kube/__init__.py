"""Kubernetes beside Swarm: what kube-proxy programs, generated from plain data (no kernel)."""
