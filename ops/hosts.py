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
import subprocess
from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

from ops.system import StackError, ensure_tool

PREFIX = "st"  # names of the bridge, the namespaces and the veth ends all begin with it
TAGS = "abcdefghijklmnopqrstuvwxyz"  # a tag is one of these letters; each has its own /24


def subnet(tag: str) -> str:
    """The tag's /24 (first three octets): the gateway is .1, hosts .2 upwards. Each tag has its
    own, so that what a killed run of one tag left behind (a bridge still holding its address,
    drops still in its chain) never reroutes or drops another tag's packets."""
    if len(tag) != 1 or tag not in TAGS:
        raise ValueError(f"a hosts tag is one lowercase letter, not {tag!r}")
    return f"10.211.{100 + TAGS.index(tag)}"


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
        self.subnet = subnet(tag)  # runs with different tags may coexist
        self.tag = tag
        self.bridge = f"{PREFIX}{tag}-br"
        self.chain = f"{PREFIX.upper()}-{tag.upper()}-CUTS"  # the machine's INPUT jumps here
        self.gateway = f"{self.subnet}.1"
        self.addresses: dict[str, str] = {}

    @staticmethod
    def available() -> bool:
        """Root, with iproute2 and iptables (installed from Debian's packages where missing)."""
        if os.geteuid() != 0:
            return False
        try:
            ensure_tool("ip", "iproute2")
            ensure_tool("iptables", "iptables")
        except StackError:
            return False
        return True

    def namespace(self, host: str) -> str:
        return f"{PREFIX}{self.tag}-{host}"

    def __enter__(self) -> Hosts:
        self.remove()
        holders = subprocess.run(["ip", "-o", "-4", "addr", "show", "to", f"{self.subnet}.0/24"],
                                 capture_output=True, text=True, check=True).stdout.split()
        if holders:
            raise RuntimeError(f"{self.subnet}.0/24 is already on {holders[1]}: the test hosts of tag "
                               f"{self.tag!r} need it; remove that interface or use another tag")
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
        address = f"{self.subnet}.{len(self.addresses) + 2}"
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
