"""Acting on the nodes of a network: what each node needs (deploy), the transports (`Connection`:
local subprocesses or SSH with strict host keys, rsync), the node agents (local in-process; the
SSH agent over `Connection` comes with deployment across machines) and the controller that runs
them in parallel. May import sfarm.inventory, sfarm.runtime, sfarm.status, sfarm.data,
sfarm.exchanges, sfarm.resources, sfarm.errors, `sfarm.__version__`, fabric and paramiko."""
