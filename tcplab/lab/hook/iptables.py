"""The rules that hand the router's TCP segments to the hook's queue, and the queue's
counters. Run inside the router namespace: the rules die with it (no cleanup of our
own is needed, nor possible to forget)."""

from __future__ import annotations

import subprocess

CHAIN = "TCPLAB"


def install_rules(queue: int, matches: list[list[str]]) -> str:
    """Put our chain first in FORWARD, queueing what each of `matches` matches
    (tcplab/lab/hook/selection.py). Returns the iptables flavour that worked: the
    nft-backed one needs nft_compat + xt_NFQUEUE, the legacy one ip_tables."""
    errors = []
    for binary in ("iptables", "iptables-nft", "iptables-legacy"):
        cmds = [
            [binary, "-w", "-N", CHAIN],
            *(
                [
                    binary,
                    "-w",
                    "-A",
                    CHAIN,
                    *match,
                    "-j",
                    "NFQUEUE",
                    "--queue-num",
                    str(queue),
                    "--queue-bypass",
                ]
                for match in matches
            ),
            [binary, "-w", "-I", "FORWARD", "1", "-j", CHAIN],
        ]
        try:
            for cmd in cmds:
                subprocess.run(cmd, check=True, capture_output=True, text=True)
            return binary
        except FileNotFoundError:
            errors.append(f"{binary}: not installed")
        except subprocess.CalledProcessError as e:
            errors.append(f"{binary}: {e.stderr.strip() or e.returncode}")
            subprocess.run([binary, "-w", "-F", CHAIN], capture_output=True)
            subprocess.run([binary, "-w", "-X", CHAIN], capture_output=True)
    raise SystemExit("cannot install the NFQUEUE rule: " + "; ".join(errors))


def install_prerouting(binary: str, queue: int, addrs: list[str]) -> None:
    """Queue TCP toward these addresses in mangle PREROUTING too (a link set down:
    tcplab/lab/hook/faults.py), and the router's own ICMP destination unreachables in
    mangle OUTPUT."""
    if addrs:
        subprocess.run(
            [
                binary,
                "-w",
                "-t",
                "mangle",
                "-A",
                "OUTPUT",
                "-p",
                "icmp",
                "--icmp-type",
                "destination-unreachable",
                "-j",
                "NFQUEUE",
                "--queue-num",
                str(queue),
                "--queue-bypass",
            ],
            check=True,
            capture_output=True,
            text=True,
        )
    for addr in addrs:
        subprocess.run(
            [
                binary,
                "-w",
                "-t",
                "mangle",
                "-I",
                "PREROUTING",
                "1",
                "-p",
                "tcp",
                "-d",
                addr,
                "-j",
                "NFQUEUE",
                "--queue-num",
                str(queue),
                "--queue-bypass",
            ],
            check=True,
            capture_output=True,
            text=True,
        )


def queue_stats(queue: int) -> dict:
    """Counters from /proc/net/netfilter/nfnetlink_queue (per namespace): packets the
    kernel dropped because the queue or the socket overflowed."""
    try:
        with open("/proc/net/netfilter/nfnetlink_queue") as f:
            for line in f:
                cols = line.split()
                if cols and int(cols[0]) == queue:
                    return {
                        "queue_total": int(cols[2]),
                        "queue_dropped": int(cols[5]),
                        "user_dropped": int(cols[6]),
                        "id_sequence": int(cols[7]),
                    }
    except (OSError, ValueError, IndexError):
        pass
    return {}
