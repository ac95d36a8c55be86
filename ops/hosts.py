"""Test hosts: network namespaces on one bridge, each with its own address, so that a fault is a
link cut (iptables DROP inside one host) while every other link still carries traffic.

The machine itself is the bridge's first address (`Hosts.gateway`): servers that stay in the root
namespace (the stack's PostgreSQL and Redis) are reached there through forwarders bound to that
address (tests/proxy.py). Each host added gets the next address, a veth pair into the bridge and
its own loopback; `Hosts.command` runs a program inside it. A cut drops the TCP packets of one
port to and from one peer address, in both directions or in one, until `heal`. The kernel's TCP
stack then behaves as across a real partition: unacknowledged data is retransmitted with a
backed-off timer, connections stay open and quiet.

Needs root (CAP_NET_ADMIN), iproute2 and iptables; `Hosts.available()` says whether they are there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

PREFIX = "st"  # names of the bridge, the namespaces and the veth ends all begin with it
SUBNET = "10.211.77"  # /24: the gateway is .1, hosts .2 upwards


def via(url: str, host: str, port: int) -> str:
    """The URL with its host and port replaced (credentials, path and query kept): a server on the
    machine as a host reaches it, through a forwarder on the gateway."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@{host}:{port}" if credentials else f"{host}:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


class Hosts:
    """Namespaces created on entry and removed on exit (and any left by an earlier run first)."""

    def __init__(self, tag: str = "t") -> None:
        self.tag = tag  # runs with different tags may coexist
        self.bridge = f"{PREFIX}{tag}-br"
        self.chain = f"{PREFIX.upper()}-{tag.upper()}-CUTS"  # the machine's INPUT jumps here
        self.gateway = f"{SUBNET}.1"
        self.addresses: dict[str, str] = {}

    @staticmethod
    def available() -> bool:
        return os.geteuid() == 0 and bool(shutil.which("ip")) and bool(shutil.which("iptables"))

    def namespace(self, host: str) -> str:
        return f"{PREFIX}{self.tag}-{host}"

    def __enter__(self) -> Hosts:
        self.remove()
        self._iptables(None, "-N", self.chain)  # the machine's own drops, apart from its other rules
        self._iptables(None, "-I", "INPUT", "-j", self.chain)
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def add(self, host: str) -> str:
        """A new host on the bridge: its address."""
        address = f"{SUBNET}.{len(self.addresses) + 2}"
        ns, outer = self.namespace(host), f"{PREFIX}{self.tag}-{len(self.addresses) + 2}"
        _ip("netns", "add", ns)
        _ip("link", "add", outer, "type", "veth", "peer", "name", "eth0", "netns", ns)
        _ip("link", "set", outer, "master", self.bridge)
        _ip("link", "set", outer, "up")
        for args in (("addr", "add", f"{address}/24", "dev", "eth0"), ("link", "set", "eth0", "up"),
                     ("link", "set", "lo", "up")):
            _ip("netns", "exec", ns, "ip", *args)
        self.addresses[host] = address
        return address

    def command(self, host: str, argv: Sequence[str]) -> list[str]:
        """argv run inside the host (the same process: `ip netns exec` executes it in place)."""
        return ["ip", "netns", "exec", self.namespace(host), *argv]

    def _iptables(self, where: str | None, *args: str) -> None:
        """iptables in a host's namespace, or on the machine (where=None)."""
        argv = ["iptables", *args]
        subprocess.run(argv if where is None else self.command(where, argv), check=True, capture_output=True)

    def _host_at(self, address: str) -> str | None:
        """The host with that address (None: the machine, at the gateway)."""
        if address == self.gateway:
            return None
        return next(h for h, a in self.addresses.items() if a == address)

    def cut(self, host: str, peer: str, port: int, direction: str = "both", served: bool = False) -> None:
        """Lose the host's packets to `peer` ("out"), the peer's packets to the host ("in"), or
        both, on the TCP connections to the peer's `port` (served: to the host's own `port`,
        which the peer connects to). Each is dropped where it arrives, as a lossy network would:
        a packet dropped on its way out would be an error its sender sees (Linux then retries it
        every half second instead of backing off)."""
        if direction not in ("both", "out", "in"):
            raise ValueError(f"direction must be both, out or in, not {direction!r}")
        address = self.addresses[host]
        to_peer, from_peer = ("--sport", "--dport") if served else ("--dport", "--sport")
        if direction in ("both", "out"):
            where = self._host_at(peer)
            self._iptables(where, "-A", self.chain if where is None else "INPUT", "-s", address, "-d", peer,
                           "-p", "tcp", to_peer, str(port), "-j", "DROP")
        if direction in ("both", "in"):
            self._iptables(host, "-A", "INPUT", "-s", peer, "-d", address, "-p", "tcp", from_peer, str(port),
                           "-j", "DROP")

    def heal(self) -> None:
        """Every cut removed."""
        self._iptables(None, "-F", self.chain)
        for host in self.addresses:
            self._iptables(host, "-F", "INPUT")

    def remove(self) -> None:
        """Every namespace and the bridge of this tag, whatever an earlier run left."""
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        for line in listed.splitlines():
            name = line.split()[0] if line.strip() else ""
            if name.startswith(f"{PREFIX}{self.tag}-"):
                subprocess.run(["ip", "netns", "delete", name], capture_output=True)
        # The machine's ends of the veth pairs (and with them the hosts' ends): a namespace whose
        # name is gone lives on while any process is still in it, and so would its link.
        links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
        for line in links.splitlines():
            name = line.split(":")[1].strip().split("@")[0] if line.count(":") > 1 else ""
            if name.startswith(f"{PREFIX}{self.tag}-"):
                subprocess.run(["ip", "link", "delete", name], capture_output=True)
        for args in (("-D", "INPUT", "-j", self.chain), ("-F", self.chain), ("-X", self.chain)):
            subprocess.run(["iptables", *args], capture_output=True)
        self.addresses = {}
