"""Node configuration: identity, server settings, store URL, API roots and keys, read from DIR/node.toml."""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from .markings.definitions import TLP_LEVELS

CONFIG_FILE = "node.toml"
DEFAULT_PORT = 8470


class ConfigError(Exception):
    """The node configuration is missing or wrong; the message says where and what to do."""


@dataclass
class ApiRootConfig:
    name: str
    title: str
    description: str = ""


@dataclass
class KeyConfig:
    """A public Ed25519 key with its validity window (STIX timestamps; not_after empty: still valid)."""

    public: str  # base64url of the raw 32 bytes
    not_before: str = ""
    not_after: str = ""


@dataclass
class PartnerConfig:
    """A link to a partner's node (docs/federation.md)."""

    org: str  # the partner organisation's short name on this node, e.g. JPN
    identity: str  # its STIX identity id
    url: str = ""  # its TAXII 2.1 discovery URL; empty: known and pinned (to verify relays), not linked
    direction: str = "both"  # pull | push | both | none
    collections: list[str] = field(default_factory=lambda: ["shared"])  # aliases exchanged (same on both sides)
    community: str = "partners"
    token_file: str = ""  # our bearer token at the partner's node (a secret: mode 0600)
    client_cert: str = ""  # or a TLS client certificate and key for mutual TLS
    client_key: str = ""
    ca_file: str = ""  # the CA that signed the partner's server certificate (https)
    poll_interval: float = 5.0  # seconds between pulls when nothing is pending
    max_requests_per_second: float = 20.0
    keys: list[KeyConfig] = field(default_factory=list)

    @property
    def pulls(self) -> bool:
        return bool(self.url) and self.direction in ("pull", "both")

    @property
    def pushes(self) -> bool:
        return bool(self.url) and self.direction in ("push", "both")


DIRECTIONS = ("pull", "push", "both", "none")


@dataclass
class CorrelateConfig:
    """Indicator matching, sightings and retro-hunts (docs/correlation.md)."""

    collection: str = "shared"  # where sightings and their observed data are published
    hunt_days: int = 30  # a new or updated indicator is matched against the observations of these last days
    keep_days: int = 30  # observations are kept this long for retro-hunts
    release_to_originator: bool = True  # a sighting is always releasable to the indicator's originator
    sighting_marking: str = ""  # a TLP level for every sighting; empty: the indicator's own level
    warning_lists: list[str] = field(default_factory=lambda: ["warninglists"])  # MISP warning list files or folders
    flush_seconds: float = 5.0  # how often aggregated sightings are published
    examples: int = 10  # observed-data objects kept as evidence per sighting


@dataclass
class MaritimeConfig:
    """The maritime picture (docs/maritime.md): sharing policy, geography, detector parameters."""

    collection: str = "shared"  # where vessels, events and sightings are published
    marking: str = "amber"  # TLP level of everything the picture publishes
    releasable_to: list[str] = field(default_factory=list)  # organisations (short names) named as recipients
    land: str = "globe"  # the land mask: "globe" (packaged, 1 km), a GeoJSON of land polygons, or "none"
    zones: str = "zones"  # folder of GeoJSON zone files (kuroshio ais zones)
    island_chain_gates: bool = True  # watch the first island chain's gaps for transits
    keep_days: int = 30  # positions kept for track queries
    publish_seconds: float = 10.0  # how often new and changed events are published
    params: dict[str, float] = field(default_factory=dict)  # detector parameters that differ from the defaults


@dataclass
class NodeConfig:
    home: Path
    org: str  # short organisation name, e.g. TWN
    org_name: str  # display name, e.g. Taiwan
    identity: str  # the organisation's STIX identity id
    title: str
    description: str = ""
    contact: str = ""
    community: str = "partners"  # the community of partner organisations: who TLP:GREEN reaches
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    max_content_length: int = 10 * 1024 * 1024
    page_size: int = 1000  # default page when a client gives no limit
    max_page_size: int = 10000  # largest page served, whatever limit a client asks for
    ingest_workers: int | None = None  # processes validating large envelopes; None: one per core (0 on one core)
    store_url: str = "sqlite:///node.db"
    signing_key: str = "keys/signing.key"
    signing_key_since: str = ""  # when the current key became valid
    retired_keys: list[KeyConfig] = field(default_factory=list)  # earlier keys: old signatures stay verifiable
    tls_cert: str = ""  # serve https with this certificate and key
    tls_key: str = ""
    tls_client_ca: str = ""  # and require client certificates signed by this CA (mutual TLS)
    partners: list[PartnerConfig] = field(default_factory=list)
    correlate: CorrelateConfig = field(default_factory=CorrelateConfig)
    maritime: MaritimeConfig = field(default_factory=MaritimeConfig)
    api_roots: list[ApiRootConfig] = field(default_factory=lambda: [
        ApiRootConfig("intel", "Intelligence", "STIX 2.1 intelligence shared by this node")
    ])

    @property
    def default_api_root(self) -> str:
        return self.api_roots[0].name

    def api_root(self, name: str) -> ApiRootConfig | None:
        return next((r for r in self.api_roots if r.name == name), None)

    def partner(self, org: str) -> PartnerConfig | None:
        return next((p for p in self.partners if p.org == org), None)

    def path(self, relative: str) -> Path:
        p = Path(relative)
        return p if p.is_absolute() else self.home / p

    def save(self) -> None:
        data: dict[str, Any] = {
            "node": {"org": self.org, "org_name": self.org_name, "identity": self.identity, "title": self.title,
                     "description": self.description, "contact": self.contact,
                     "community": self.community},
            "server": {"host": self.host, "port": self.port, "max_content_length": self.max_content_length,
                       "page_size": self.page_size, "max_page_size": self.max_page_size,
                       **({"ingest_workers": self.ingest_workers} if self.ingest_workers is not None else {})},
            "store": {"url": self.store_url},
            "keys": {"signing_key": self.signing_key, "signing_key_since": self.signing_key_since,
                     "retired": [asdict(k) for k in self.retired_keys]},
            "tls": {"cert": self.tls_cert, "key": self.tls_key, "client_ca": self.tls_client_ca},
            "api_roots": [asdict(r) for r in self.api_roots],
            "partners": [asdict(p) for p in self.partners],
            "correlate": asdict(self.correlate),
            "maritime": asdict(self.maritime),
        }
        (self.home / CONFIG_FILE).write_text(tomli_w.dumps(data))

    @classmethod
    def load(cls, home: Path) -> NodeConfig:
        path = home / CONFIG_FILE
        if not path.is_file():
            raise ConfigError(f"{path} does not exist: create a node home first with `kuroshio init {home} --org NAME`")
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML ({exc}): fix the file or re-create the node home") from None
        try:
            node = data["node"]
            server = data.get("server", {})
            roots = [ApiRootConfig(**r) for r in data.get("api_roots", [])]
            cfg = cls(
                home=home,
                org=node["org"],
                org_name=node.get("org_name", node["org"]),
                identity=node["identity"],
                title=node.get("title", f"Kuroshio node {node['org']}"),
                description=node.get("description", ""),
                contact=node.get("contact", ""),
                community=str(node.get("community", "partners")),
                host=server.get("host", "127.0.0.1"),
                port=int(server.get("port", DEFAULT_PORT)),
                max_content_length=int(server.get("max_content_length", 10 * 1024 * 1024)),
                page_size=int(server.get("page_size", 1000)),
                max_page_size=int(server.get("max_page_size", 10000)),
                ingest_workers=int(server["ingest_workers"]) if "ingest_workers" in server else None,
                store_url=data.get("store", {}).get("url", "sqlite:///node.db"),
                signing_key=data.get("keys", {}).get("signing_key", "keys/signing.key"),
                signing_key_since=data.get("keys", {}).get("signing_key_since", ""),
                retired_keys=[KeyConfig(**k) for k in data.get("keys", {}).get("retired", [])],
                tls_cert=data.get("tls", {}).get("cert", ""),
                tls_key=data.get("tls", {}).get("key", ""),
                tls_client_ca=data.get("tls", {}).get("client_ca", ""),
                partners=[PartnerConfig(**{**p, "keys": [KeyConfig(**k) for k in p.get("keys", [])]})
                          for p in data.get("partners", [])],
            )
            if roots:
                cfg.api_roots = roots
            cfg.correlate = CorrelateConfig(**data.get("correlate", {}))
            cfg.maritime = MaritimeConfig(**data.get("maritime", {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{path}: missing or invalid setting {exc}: compare with the example in docs/operations.md") from None
        for p in cfg.partners:
            if p.direction not in DIRECTIONS:
                raise ConfigError(f"{path}: partner {p.org}: direction must be one of {', '.join(DIRECTIONS)}")
        if cfg.correlate.sighting_marking and cfg.correlate.sighting_marking not in TLP_LEVELS:
            raise ConfigError(f"{path}: correlate.sighting_marking must be empty or one of {', '.join(TLP_LEVELS)}")
        if cfg.maritime.marking not in TLP_LEVELS:
            raise ConfigError(f"{path}: maritime.marking must be one of {', '.join(TLP_LEVELS)}")
        if not 1 <= cfg.page_size <= cfg.max_page_size:
            raise ConfigError(f"{path}: server.page_size must be between 1 and server.max_page_size")
        return cfg
