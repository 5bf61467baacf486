"""The faults as JSON, both ways: the runner writes each child's share into its config
line, and the child reads it back here, so the dataclasses (tcplab/core/scenario.py
`Fault`, tcplab/core/faults.py `HostFault` and `Forge`) cross the process boundary
in one place. The hook applies segment faults, link-down, crash, reboot's silence and
the forges; an app agent kills its application (kill) or makes its sockets vanish
(reboot)."""

from __future__ import annotations

import dataclasses

from tcplab.core.faults import BY_AGENT, BY_HOOK, Fault, Forge, HostFault


def to_json(fault) -> dict:
    return dataclasses.asdict(fault)


def from_json(cls, d: dict):
    """A Fault, HostFault or Forge; JSON has no tuples, so `nth` comes back as one."""
    if d.get("nth") is not None:
        d = {**d, "nth": tuple(d["nth"])}
    return cls(**d)


def for_hook(sc, plan) -> dict:
    return {
        "faults": [to_json(f) for f in sc.faults],
        "host_faults": [to_json(f) for f in sc.host_faults if f.action in BY_HOOK],
        "forges": [to_json(f) for f in sc.forges],
        "addrs": {"client": plan.client_addr, "server": plan.server_addr},
        "links": {
            "client": {"ifname": "to-client", "addr": plan.router_client_addr, "prefixlen": plan.prefixlen},
            "server": {"ifname": "to-server", "addr": plan.router_server_addr, "prefixlen": plan.prefixlen},
        },
    }


def hook_faults(config: dict) -> tuple[list[Fault], list[HostFault], list[Forge]]:
    """The hook's side of for_hook()."""
    return (
        [from_json(Fault, f) for f in config.get("faults", ())],
        [from_json(HostFault, f) for f in config.get("host_faults", ())],
        [from_json(Forge, f) for f in config.get("forges", ())],
    )


def for_agent(sc, host: str) -> dict:
    return {
        "host": host,
        "host_faults": [to_json(f) for f in sc.host_faults if f.action in BY_AGENT and f.host == host],
    }
