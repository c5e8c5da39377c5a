"""Fixtures for black-box balancer tests: real upstream processes and a real ``balancedesk balance`` child.

Everything listens on 127.0.0.1; every child is killed by its PID at teardown (via ``spawn``).
Helpers live in :mod:`lbkit`.
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lbkit import BALANCEDESK, BALANCING_RX, READY_RX, UPSTREAMS, Balancer, Child, Upstream
from test_shell_kit import Members


@pytest.fixture
def members() -> Iterator[Members]:
    """In-process member servers (TCP echo, HTTP) on 127.0.0.1 for the shell tests."""
    m = Members()
    yield m
    m.close()


@pytest.fixture
def upstream(spawn: Callable[..., Child]) -> Callable[..., Upstream]:
    """``upstream(kind, name, port=0)`` with kind tcp_name / http_backend / blackhole."""

    def start(kind: str, name: str, port: int = 0) -> Upstream:
        script = str(UPSTREAMS / f"{kind}.py")
        cmd = [sys.executable, script, "--name", name]
        if port:
            cmd += ["--port", str(port)]
        child = spawn(cmd)
        m = child.wait_for(READY_RX, timeout=15)
        return Upstream(name, int(m[2]), child, script)

    return start


@pytest.fixture
def balancer(spawn: Callable[..., Child], tmp_path: Path) -> Iterator[Callable[..., Balancer]]:
    """``balancer(config, mode="tcp", args=[])`` → a running ``balancedesk balance`` child."""
    count = 0

    def start(config: dict[str, Any], *, mode: str = "tcp", args: list[str] | None = None) -> Balancer:
        nonlocal count
        count += 1
        cfg = tmp_path / f"balancer{count}.json"
        cfg.write_text(json.dumps(config))
        token = secrets.token_hex(16)
        token_file = tmp_path / f"token{count}"
        token_file.write_text(token + "\n")
        cmd = [*BALANCEDESK, "balance", "--config", str(cfg), "--listen", "127.0.0.1:0", "--mode", mode,
               "--admin", "127.0.0.1:0", "--admin-token-file", str(token_file), *(args or [])]
        child = spawn(cmd)
        m = child.wait_for(BALANCING_RX, timeout=20)
        return Balancer(m[1], int(m[2]), m[3], token, cfg, child)

    yield start
