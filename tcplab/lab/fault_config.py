"""What the lab's children need to know about the time-window faults and forges
(tcplab/core/faults.py), as JSON-able config: the hook applies link-down, crash,
reboot's silence and the forges; an app agent kills its application (kill) or makes
its sockets vanish (reboot)."""

from __future__ import annotations

import dataclasses

from tcplab.core.faults import BY_AGENT, BY_HOOK


def for_hook(sc, plan) -> dict:
    return {"host_faults": [dataclasses.asdict(f) for f in sc.host_faults
                            if f.action in BY_HOOK],
            "forges": [dataclasses.asdict(f) for f in sc.forges],
            "addrs": {"client": plan.client_addr, "server": plan.server_addr},
            "links": {"client": {"ifname": "to-client", "addr": plan.router_client_addr,
                                 "prefixlen": plan.prefixlen},
                      "server": {"ifname": "to-server", "addr": plan.router_server_addr,
                                 "prefixlen": plan.prefixlen}}}


def for_agent(sc, host: str) -> dict:
    return {"host": host,
            "host_faults": [dataclasses.asdict(f) for f in sc.host_faults
                            if f.action in BY_AGENT and f.host == host]}
