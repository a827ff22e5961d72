"""Running the installed `tokenclub` program as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).with_name("tokenclub")


def run_cli(
    home: Path, *args: str, database_url: str | None = None, env_extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENCLUB_")}
    env["TOKENCLUB_HOME"] = str(home)
    env.update(env_extra or {})
    if database_url:
        env["TOKENCLUB_DATABASE_URL"] = database_url
    return subprocess.run([str(BIN), *args], env=env, capture_output=True, text=True, timeout=120)


def run_json(home: Path, *args: str, database_url: str | None = None) -> Any:
    result = run_cli(home, *args, "--json", database_url=database_url)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)
