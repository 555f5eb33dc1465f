"""Acting on the nodes of a network: what each node needs (deploy), the connections to a node's
machine (`Connection`: local subprocesses or SSH with strict host keys, rsync), the node agent
(every operation as a request of the node protocol, over an in-process transport for a local
node or `sfarm node call` over SSH) and the controller that runs it on every node in parallel.
May import sfarm.inventory, sfarm.runtime, sfarm.status, sfarm.data, sfarm.exchanges,
sfarm.resources, sfarm.errors, `sfarm.__version__`, fabric and paramiko."""
