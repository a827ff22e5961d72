"""Master keys: the key file (0600, refused when readable by others), the environment, a KMS hook."""

from __future__ import annotations

import base64
import os
import stat
import sys
import types
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag

from tokenclub.atrest.keys import Keyring, key_from_env, load_key_file, load_kms, new_key_file
from tokenclub.errors import InvalidInputError, StateError


def test_key_file_is_created_private_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "master.key"
    ring = new_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert new_key_file(path).keys == ring.keys  # never replaced
    wrapped = ring.wrap(b"k" * 32, b"ctx")
    assert load_key_file(path).unwrap(*wrapped, b"ctx") == b"k" * 32


def test_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    new_key_file(path)
    os.chmod(path, 0o644)
    with pytest.raises(StateError, match="readable by others"):
        load_key_file(path)


def test_wrapped_keys_are_bound_to_their_context() -> None:
    ring = Keyring({}, "").with_new_key()
    key_id, wrapped = ring.wrap(b"d" * 32, b"object 1")
    with pytest.raises(InvalidTag):
        ring.unwrap(key_id, wrapped, b"object 2")


def test_environment_key() -> None:
    ring = key_from_env(base64.b64encode(b"e" * 32).decode())
    assert ring.current_key_id == "env"
    with pytest.raises(InvalidInputError, match="32 bytes in base64"):
        key_from_env("c2hvcnQ=")


def test_kms_hook_is_a_factory_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("example_kms")
    ring = Keyring({}, "").with_new_key()
    module.make = lambda: ring  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "example_kms", module)
    assert load_kms("example_kms:make") is ring
    with pytest.raises(InvalidInputError, match=r"expected 'package\.module:factory'"):
        load_kms("example_kms")
