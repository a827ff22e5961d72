"""Master keys: what wraps each object's data key.

Three sources, in order:

1. an external KMS, named by `TOKENCLUB_KMS` as ``package.module:factory``; the factory is
   called with no arguments and returns a `KeyWrapper` (the hook: two methods and a key id;
   see docs/ingest.md for an example over a cloud KMS);
2. the environment variable `TOKENCLUB_MASTER_KEY`: 32 bytes, base64 (key id ``env``);
3. the key file (default ``<home>/master.key``, created 0600 by `tokenclub init`): a JSON
   keyring of base64 keys by id and the id of the current one. Rotation adds a key, re-wraps
   every object's data key with it and then drops the old ones.

Data keys are wrapped with AES-256-GCM under the master key, bound to the object they
belong to (the associated data), so a wrapped key moved to another header does not open.
"""

from __future__ import annotations

import base64
import binascii
import importlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tokenclub.errors import InvalidInputError, StateError

KEY_FILE_NAME = "master.key"
ENV_KEY_ID = "env"
_NONCE = 12


class KeyWrapper(Protocol):
    """The KMS hook: wrap a data key under the current master key, and unwrap any wrapped key.

    `context` is associated data binding a wrapped key to its object: pass it to the KMS as
    its encryption context. `wrap` returns the id of the master key used; `unwrap` gets it
    back and raises KeyError for a key it does not have.
    """

    @property
    def current_key_id(self) -> str: ...

    def wrap(self, data_key: bytes, context: bytes) -> tuple[str, bytes]: ...

    def unwrap(self, key_id: str, wrapped: bytes, context: bytes) -> bytes: ...


@dataclass(slots=True)
class Keyring:
    """Local master keys by id; `current` wraps new data keys, all of them unwrap."""

    keys: dict[str, bytes]
    current: str
    path: Path | None = field(default=None)

    @property
    def current_key_id(self) -> str:
        return self.current

    def wrap(self, data_key: bytes, context: bytes) -> tuple[str, bytes]:
        nonce = os.urandom(_NONCE)
        return self.current, nonce + AESGCM(self.keys[self.current]).encrypt(nonce, data_key, context)

    def unwrap(self, key_id: str, wrapped: bytes, context: bytes) -> bytes:
        key = self.keys[key_id]
        return AESGCM(key).decrypt(wrapped[:_NONCE], wrapped[_NONCE:], context)

    def with_new_key(self) -> Keyring:
        """A keyring with a fresh current key, keeping the old ones for unwrapping."""
        key_id = datetime.now(UTC).strftime("k%Y%m%dT%H%M%S%fZ")
        return Keyring({**self.keys, key_id: AESGCM.generate_key(bit_length=256)}, key_id, self.path)

    def only_current(self) -> Keyring:
        return Keyring({self.current: self.keys[self.current]}, self.current, self.path)

    def save(self) -> None:
        """Write the key file (0600) atomically: a temporary file renamed over it."""
        if self.path is None:
            raise StateError("this master key does not come from a key file; it cannot be saved")
        data = {
            "current": self.current,
            "keys": {k: base64.b64encode(v).decode("ascii") for k, v in sorted(self.keys.items())},
        }
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=1)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, self.path)


def new_key_file(path: Path) -> Keyring:
    """Create a key file with one fresh master key; an existing file is kept as it is."""
    if path.exists():
        return load_key_file(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    ring = Keyring({}, "", path).with_new_key()
    ring.save()
    return ring


def load_key_file(path: Path) -> Keyring:
    try:
        mode = path.stat().st_mode & 0o777
        data = json.loads(path.read_text(encoding="utf-8"))
        keys = {k: base64.b64decode(v, validate=True) for k, v in data["keys"].items()}
        current = data["current"]
    except FileNotFoundError:
        raise StateError(f"no master key file at {path}; run `tokenclub init`") from None
    except (ValueError, KeyError, TypeError, binascii.Error) as err:
        raise StateError(f"{path}: not a tokenclub key file ({err})") from None
    if mode & 0o077:
        raise StateError(f"{path}: the master key file is readable by others (mode {mode:o}); chmod 600 it")
    if current not in keys or any(len(k) != 32 for k in keys.values()):
        raise StateError(f"{path}: the current key is missing or a key is not 32 bytes")
    return Keyring(keys, current, path)


def key_from_env(value: str) -> Keyring:
    try:
        key = base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        key = b""
    if len(key) != 32:
        raise InvalidInputError("TOKENCLUB_MASTER_KEY must be 32 bytes in base64 (`openssl rand -base64 32`)")
    return Keyring({ENV_KEY_ID: key}, ENV_KEY_ID)


def load_kms(spec: str) -> KeyWrapper:
    """The KeyWrapper made by the factory `package.module:callable`."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise InvalidInputError(f"TOKENCLUB_KMS={spec!r}: expected 'package.module:factory'")
    try:
        factory: Callable[[], KeyWrapper] = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as err:
        raise InvalidInputError(f"TOKENCLUB_KMS={spec!r}: {err}") from None
    return factory()
