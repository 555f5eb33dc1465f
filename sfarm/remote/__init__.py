"""Acting on the nodes of a network: what each node needs (deploy), the node agents (local
in-process; SSH to come) and the controller that runs them in parallel. May import
sfarm.inventory, sfarm.runtime, sfarm.status, sfarm.exchanges (credentials)."""
