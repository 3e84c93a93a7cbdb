"""Warning lists: known-benign values (public resolvers, top sites, reserved ranges, empty-file hashes)
that suppress matches, in the MISP warning list format so the lists analysts already curate apply.

A list has a `type`: `string` (the value itself), `hostname` (the domain and its subdomains),
`substring`, `regex` or `cidr` (addresses and blocks, IPv4 and IPv6). Strings and host names compare
without case. Operators add their own lists as files in the node's `warninglists/` folder (or any file
or folder named in `correlate.warning_lists`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

MAX_LIST_BYTES = 64 * 1024 * 1024


class WarningListError(ValueError):
    """A warning list file that cannot be used; the message names the file and the problem."""


@dataclass
class WarningLists:
    """Every loaded list, merged into lookup tables; `listed(value)` names the list a value is on."""

    names: list[str] = field(default_factory=list)
    _strings: dict[str, str] = field(default_factory=dict)
    _hosts: dict[str, str] = field(default_factory=dict)
    _substrings: list[tuple[str, str]] = field(default_factory=list)
    _regexes: list[tuple[re.Pattern[str], str]] = field(default_factory=list)
    _nets: dict[tuple[int, int], dict[int, str]] = field(default_factory=dict)  # (version, prefix) -> masked -> name

    def __len__(self) -> int:
        return len(self.names)

    def add(self, data: dict[str, Any], source: str = "") -> None:
        """Add one list (the parsed JSON of a MISP warning list)."""
        name = data.get("name")
        kind = data.get("type", "string")
        entries = data.get("list")
        where = source or str(name)
        if not isinstance(name, str) or not name:
            raise WarningListError(f"{where}: a warning list needs a 'name'")
        if not isinstance(entries, list):
            raise WarningListError(f"{where}: 'list' must be a list of values")
        if kind not in ("string", "hostname", "substring", "regex", "cidr"):
            raise WarningListError(f"{where}: unknown type '{kind}' (string, hostname, substring, regex or cidr)")
        for entry in entries:
            if not isinstance(entry, str) or not entry:
                continue
            if kind == "string":
                self._strings.setdefault(entry.lower(), name)
            elif kind == "hostname":
                self._hosts.setdefault(entry.lower().strip(".").rstrip("."), name)
            elif kind == "substring":
                self._substrings.append((entry.lower(), name))
            elif kind == "regex":
                try:
                    self._regexes.append((re.compile(entry), name))
                except re.error as exc:
                    raise WarningListError(f"{where}: entry {entry!r} is not a valid regular expression: {exc}") from None
            else:
                try:
                    net = ipaddress.ip_network(entry.strip(), strict=False)
                except ValueError:
                    continue  # MISP lists carry the odd comment line; not an address, not a block
                bits = 32 if net.version == 4 else 128
                table = self._nets.setdefault((net.version, net.prefixlen), {})
                table.setdefault(int(net.network_address) >> (bits - net.prefixlen), name)
        self.names.append(name)

    def load(self, path: Path) -> None:
        """Add a list file, or every `*.json` file of a folder."""
        files = sorted(path.glob("*.json")) if path.is_dir() else [path]
        for f in files:
            try:
                if f.stat().st_size > MAX_LIST_BYTES:
                    raise WarningListError(f"{f}: larger than {MAX_LIST_BYTES // 2**20} MiB")
                data = orjson.loads(f.read_bytes())
            except OSError as exc:
                raise WarningListError(f"{f}: cannot be read ({exc.strerror})") from None
            except orjson.JSONDecodeError as exc:
                raise WarningListError(f"{f}: not valid JSON ({exc})") from None
            if not isinstance(data, dict):
                raise WarningListError(f"{f}: a warning list is a JSON object with 'name', 'type' and 'list'")
            self.add(data, str(f))

    @classmethod
    def from_paths(cls, paths: Iterable[Path]) -> WarningLists:
        lists = cls()
        for p in paths:
            if p.exists():
                lists.load(p)
        return lists

    def listed(self, value: Any) -> str | None:
        """The name of a list `value` is on, or None."""
        if type(value) is not str or not value:
            return None
        low = value.lower()
        hit = self._strings.get(low)
        if hit:
            return hit
        if self._hosts:
            host = low.rstrip(".")
            while host:
                hit = self._hosts.get(host)
                if hit:
                    return hit
                dot = host.find(".")
                if dot < 0:
                    break
                host = host[dot + 1:]
        if self._nets and (":" in value or value[:1].isdigit()):
            try:
                net = ipaddress.ip_network(value, strict=False)
            except ValueError:
                net = None
            if net is not None:
                bits = 32 if net.version == 4 else 128
                base = int(net.network_address)
                for (version, plen), table in self._nets.items():
                    if version == net.version and plen <= net.prefixlen:
                        hit = table.get(base >> (bits - plen))
                        if hit:
                            return hit
        for sub, name in self._substrings:
            if sub in low:
                return name
        for rx, name in self._regexes:
            if rx.search(value):
                return name
        return None
