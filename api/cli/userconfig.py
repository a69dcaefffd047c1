"""Where `shipstack login` keeps the service URL and API key, and which ones a command uses.

The file is `$XDG_CONFIG_HOME/shipstack/config.json` (else `~/.config/shipstack/config.json`),
readable by its owner alone: mode 0600 in a 0700 folder, written through a private
temporary file and a rename, so the key is never readable by others even for a moment
and a crash mid-write leaves the old file whole. `SHIPSTACK_URL` and `SHIPSTACK_TOKEN`
override what is stored (CI jobs use them and never log in).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path

import msgspec

from api.cli.errors import EXIT_AUTH, EXIT_USAGE, CliError

ENV_URL = "SHIPSTACK_URL"
ENV_TOKEN = "SHIPSTACK_TOKEN"
FILE_MODE = 0o600
DIR_MODE = 0o700


class Login(msgspec.Struct, frozen=True):
    """What the file holds, and what a command uses."""

    url: str
    token: str


def config_path(env: Mapping[str, str] | None = None) -> Path:
    e = os.environ if env is None else env
    base = e.get("XDG_CONFIG_HOME") or str(Path(e.get("HOME") or Path.home()) / ".config")
    return Path(base) / "shipstack" / "config.json"


def normalize_url(url: str) -> str:
    """`host:8000` and `http://host:8000/` both mean `http://host:8000`."""
    url = url.strip().rstrip("/")
    if not url:
        raise CliError("the service URL is empty", EXIT_USAGE, "give it as `shipstack login http://HOST:PORT`")
    if "://" not in url:
        url = "http://" + url
    if not url.startswith(("http://", "https://")):
        raise CliError(f"unsupported URL {url!r}", EXIT_USAGE, "the URL must start with http:// or https://")
    return url


def load(path: Path) -> Login | None:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}", EXIT_AUTH, "run `shipstack login URL` again") from None
    try:
        return msgspec.json.decode(raw, type=Login)
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise CliError(f"{path} is not a shipstack login file", EXIT_AUTH, "run `shipstack login URL` again") from None


def save(path: Path, login: Login) -> None:
    path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    # mkdir's mode is filtered by the umask and ignored for a folder that exists.
    os.chmod(path.parent, DIR_MODE)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # O_EXCL with the final mode: the key is never in a file others could open.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(msgspec.json.format(msgspec.json.encode(login), indent=2) + b"\n")
        os.chmod(tmp, FILE_MODE)  # the umask may have taken bits away, never added them
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def remove(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def resolve(env: Mapping[str, str] | None = None) -> Login:
    """The URL and key a command uses: the environment first, then the login file."""
    e = os.environ if env is None else env
    stored = load(config_path(e))
    url = e.get(ENV_URL) or (stored.url if stored else "")
    token = e.get(ENV_TOKEN) or (stored.token if stored else "")
    if not url or not token:
        missing = " and ".join(n for n, v in (("service URL", url), ("API key", token)) if not v)
        raise CliError(
            f"not logged in: no {missing}",
            EXIT_AUTH,
            f"run `shipstack login URL` (or set {ENV_URL} and {ENV_TOKEN})",
        )
    return Login(url=normalize_url(url), token=token)
