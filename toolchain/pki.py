"""Certificates and kubeconfigs of the local cluster: a CA per trust domain, a key
and certificate per component (openssl, so nothing beyond the standard library)."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_key(path: Path) -> None:
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-out", str(path))


def make_ca(pki: Path, name: str) -> None:
    make_key(pki / f"{name}.key")
    openssl(
        "req", "-x509", "-new", "-key", str(pki / f"{name}.key"), "-days", "3650",
        "-subj", f"/CN={name}", "-out", str(pki / f"{name}.crt"),
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
    )  # fmt: skip


def make_cert(pki: Path, ca: str, name: str, subject: str, *, server_sans: str | None = None) -> None:
    """Signs NAME.crt with CA: a client certificate, or a serving one with SANs."""
    make_key(pki / f"{name}.key")
    ext = pki / f"{name}.ext"
    if server_sans:
        ext.write_text(
            f"keyUsage=critical,digitalSignature,keyEncipherment\n"
            f"extendedKeyUsage=serverAuth\nsubjectAltName={server_sans}\n"
        )
    else:
        ext.write_text("keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n")
    csr = pki / f"{name}.csr"
    openssl("req", "-new", "-key", str(pki / f"{name}.key"), "-subj", subject, "-out", str(csr))
    openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(pki / f"{ca}.crt"), "-CAkey", str(pki / f"{ca}.key"),
        "-CAcreateserial", "-days", "3650", "-extfile", str(ext), "-out", str(pki / f"{name}.crt"),
    )  # fmt: skip
    csr.unlink()
    ext.unlink()


def make_pki(pki: Path) -> None:
    pki.mkdir(parents=True, exist_ok=True)
    make_ca(pki, "ca")
    make_ca(pki, "front-proxy-ca")
    local = "IP:127.0.0.1,DNS:localhost"
    make_cert(pki, "ca", "apiserver", "/CN=kube-apiserver", server_sans=(
        f"{local},IP:10.96.0.1,DNS:kubernetes,DNS:kubernetes.default,"
        "DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"))  # fmt: skip
    make_cert(pki, "ca", "kwok-serving", "/CN=kwok", server_sans=local)
    make_cert(pki, "ca", "metrics-server-serving", "/CN=metrics-server", server_sans=local)
    # Client identities, each the user RBAC's bootstrap policy expects.
    make_cert(pki, "ca", "admin", "/O=system:masters/CN=shipstack-admin")
    make_cert(pki, "ca", "controller-manager", "/CN=system:kube-controller-manager")
    make_cert(pki, "ca", "scheduler", "/CN=system:kube-scheduler")
    make_cert(pki, "ca", "kwok", "/CN=kwok-controller")
    make_cert(pki, "ca", "metrics-server", "/CN=system:metrics-server")
    make_cert(pki, "ca", "apiserver-kubelet-client", "/CN=kube-apiserver-kubelet-client")
    make_cert(pki, "front-proxy-ca", "front-proxy-client", "/CN=front-proxy-client")
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(pki / "sa.key"))
    openssl("pkey", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub"))


def kubeconfig(pki: Path, server: str, user: str) -> str:
    def b64(name: str) -> str:
        return base64.b64encode((pki / name).read_bytes()).decode()

    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "shipstack-local", "cluster": {"server": server, "certificate-authority-data": b64("ca.crt")}}
            ],
            "users": [
                {
                    "name": user,
                    "user": {"client-certificate-data": b64(f"{user}.crt"), "client-key-data": b64(f"{user}.key")},
                }
            ],
            "contexts": [{"name": "shipstack-local", "context": {"cluster": "shipstack-local", "user": user}}],
            "current-context": "shipstack-local",
        },
        indent=2,
    )


# --- the API, through the admin certificate ----------------------------------
