"""A lab's manager: the control loop a Swarm runs on its manager node.

One process per lab (started by ``up``, stopped by ``down``) holds the
dispatcher and every node's agent: each agent sends heartbeats over the lab's
own LAN, from its node's namespace to the manager node's address, port 2377
(Swarm's cluster management port). A node whose heartbeats stop, because its
LAN port was cut or for any other reason, is noticed as swarmkit's dispatcher
notices it: marked down once its grace period passes, its tasks restarted on
other nodes after the restart policy's delay. Every step goes to the lab's
event log (``netlab events``).

- :mod:`.timings`: swarmkit's default timings and the lab's time scale;
- :mod:`.dispatcher`: heartbeats and node states (pure, a clock passed in);
- :mod:`.orchestrator`: what the manager decides at each tick (pure);
- :mod:`.events`: the event log's records and file;
- :mod:`.process`: the process itself (sockets through :mod:`netlab.kernel.heartbeat`).
"""
