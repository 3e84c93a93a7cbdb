"""Transport security: a node CA with server and client certificates for a first deployment, and the
TLS settings `kuroshio serve` runs with (https, and mutual TLS when a client CA bundle is set).

`kuroshio init DIR --tls` (or `kuroshio tls init DIR`) creates, under DIR/keys/tls/:

- `ca.pem`, `ca.key`: the node's own certificate authority (ECDSA P-256, 10 years);
- `server.pem`, `server.key`: the server certificate for the node's host names and addresses;
- `client.pem`, `client.key`: the client certificate the node presents to partners (mutual TLS).

The CA certificate travels in the node's partner card, so a partner can check this node's server
certificate and accept its client certificate. Operators with their own PKI set the paths in
node.toml's `[tls]` table instead. Private keys are written mode 0600.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .config import NodeConfig

TLS_DIR = "keys/tls"
CLIENT_CAS = f"{TLS_DIR}/partner-cas.pem"  # the CAs of partners whose client certificates are accepted


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)


def _name(common: str, org: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org), x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _sans(hosts: list[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for h in dict.fromkeys(hosts):
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            out.append(x509.DNSName(h))
    return out


def create_node_pki(config: NodeConfig, hosts: list[str] | None = None) -> None:
    """Create the node CA, server and client certificates, and point the configuration at them."""
    folder = config.path(TLS_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"Kuroshio node CA {config.org}", config.org_name)
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now)
          .not_valid_after(now + dt.timedelta(days=3650))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    _write_key(folder / "ca.key", ca_key)
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    names = hosts or [config.host, "127.0.0.1", "localhost"]
    for kind, usage in (("server", ExtendedKeyUsageOID.SERVER_AUTH), ("client", ExtendedKeyUsageOID.CLIENT_AUTH)):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (x509.CertificateBuilder().subject_name(_name(f"{config.org} node {kind}", config.org_name))
                   .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now).not_valid_after(now + dt.timedelta(days=825))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
        if kind == "server":
            builder = builder.add_extension(x509.SubjectAlternativeName(_sans(names)), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        _write_key(folder / f"{kind}.key", key)
        (folder / f"{kind}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    config.tls_cert = f"{TLS_DIR}/server.pem"
    config.tls_key = f"{TLS_DIR}/server.key"
    _rebuild_client_cas(config)


def ca_pem(config: NodeConfig) -> str:
    """The node CA certificate (for the partner card), or '' when the node has none of its own."""
    path = config.path(f"{TLS_DIR}/ca.pem")
    return path.read_text() if path.is_file() else ""


def client_pair(config: NodeConfig) -> tuple[str, str]:
    """The client certificate and key this node presents to partners, when it has its own PKI."""
    cert, key = f"{TLS_DIR}/client.pem", f"{TLS_DIR}/client.key"
    return (cert, key) if config.path(cert).is_file() and config.path(key).is_file() else ("", "")


def trust_partner_ca(config: NodeConfig, org: str, pem: str) -> str:
    """Keep a partner's CA certificate: to check its server, and (mutual TLS) to accept its node's client
    certificate. Returns the path of the partner's CA file, relative to the node home."""
    x509.load_pem_x509_certificate(pem.encode())  # refuse anything that is not a certificate
    rel = f"keys/partners/{org}.ca.pem"
    path = config.path(rel)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(pem)
    _rebuild_client_cas(config)
    return rel


def _rebuild_client_cas(config: NodeConfig) -> None:
    """The bundle mutual TLS accepts client certificates from: this node's CA and every partner's."""
    files = [config.path(f"{TLS_DIR}/ca.pem"), *sorted(config.path("keys/partners").glob("*.ca.pem"))]
    bundle = "".join(p.read_text() for p in files if p.is_file())
    target = config.path(CLIENT_CAS)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(bundle)


def server_config(node: Any, app: Any, host: str, port: int, **settings: Any) -> Any:
    """The uvicorn configuration of a node's server, loaded, with its TLS context kept by the node so that
    partner CAs added while it runs are trusted for new connections (Node.trust_partner_cas)."""
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, **settings, **uvicorn_tls(node.config))
    config.load()
    node.tls_context = config.ssl
    return config


def client_context(config: NodeConfig, ca_file: str, client_cert: str, client_key: str) -> ssl.SSLContext | bool:
    """The TLS context of a client talking to a partner: its CA (or the system's), our client certificate."""
    if not ca_file and not client_cert:
        return True
    ctx = ssl.create_default_context(cafile=str(config.path(ca_file)) if ca_file else None)
    if client_cert:
        ctx.load_cert_chain(str(config.path(client_cert)), str(config.path(client_key)))
    return ctx


def uvicorn_tls(config: NodeConfig) -> dict[str, Any]:
    """The uvicorn settings for https (and mutual TLS when `tls.client_ca` is set); {} for plain http."""
    if not config.tls_cert:
        return {}
    out: dict[str, Any] = {"ssl_certfile": str(config.path(config.tls_cert)),
                           "ssl_keyfile": str(config.path(config.tls_key))}
    if config.tls_client_ca:
        out["ssl_ca_certs"] = str(config.path(config.tls_client_ca))
        out["ssl_cert_reqs"] = ssl.CERT_REQUIRED
    return out
