"""Every shape the exporter makes passes the engine's own check (``haproxy -c``, ``nginx -t``): both modes,
affinity on and off, round robin and sequence, weights at the upper bound; the weight mapping keeps shares
and says when it rounds; affinity follows the listener; export from the management API (token or
user/password) and its refusals."""

from __future__ import annotations

import itertools
import os
import subprocess
from pathlib import Path

import pytest
from balancedesk.core.export import (
    ENGINES,
    HAPROXY_WEIGHT_MAX,
    haproxy_names,
    map_weights,
    render,
    server_names,
    settings_for,
    to_haproxy,
)
from balancedesk.core.model import WEIGHT_MAX, BalancerConfig, ConnectorGroup, Member, parse_balancer_config
from fleetkit import ADMIN_PASSWORD, Mgmt, free_port
from lbkit import BALANCEDESK, Spawn
from test_export_engines import HAPROXY, NGINX


def engine_check(engine: str, text: str, folder: Path) -> None:
    conf = folder / f"{engine}.conf"
    conf.write_text(text)
    if engine == "nginx":
        if NGINX is None:
            pytest.skip("nginx is not installed (./dev.sh test installs it)")
        run = subprocess.run([NGINX, "-t", "-c", str(conf), "-g", f"pid {folder}/nginx.pid;"],
                             capture_output=True, text=True)
    else:
        if HAPROXY is None:
            pytest.skip("haproxy is not installed (./dev.sh test installs it)")
        run = subprocess.run([HAPROXY, "-c", "-f", str(conf)], capture_output=True, text=True)
    assert run.returncode == 0, f"{engine} refused:\n{text}\n{run.stdout}{run.stderr}"


def config(*, weights: list[int], round_robin: bool, mode: str, affinity: str | None,
           member_ids: list[str] | None = None) -> BalancerConfig:
    ids = member_ids or [f"m-{i}" for i in range(len(weights))]
    return parse_balancer_config({
        "connectorID": "grp-7", "label": "Shapes",
        "connectorGroup": {"connectionTimeout": 0, "retryDelay": 30,
                           **({"loadBalancing": "Round Robin"} if round_robin else {}),
                           "members": [{"memberID": m, "sequence": i + 1, "weight": w}
                                       for i, (m, w) in enumerate(zip(ids, weights, strict=True))]},
        "endpoints": {m: f"127.0.0.1:{20000 + i}" for i, m in enumerate(ids)},
        "listener": {"mode": mode, "affinityHeader": affinity, "port": free_port(), "bind": "127.0.0.1"},
    })


SHAPES = [
    (engine, mode, affinity, rr, weights)
    for engine, mode, affinity, rr, weights in itertools.product(
        ENGINES, ("tcp", "http"), (None, "sender-transfer-id"), (True, False),
        ([1], [3, 2, 1], [WEIGHT_MAX, WEIGHT_MAX, 1]))
    if not (mode == "tcp" and affinity)
]


@pytest.mark.parametrize(("engine", "mode", "affinity", "rr", "weights"), SHAPES)
def test_every_shape_passes_the_engines_check(engine: str, mode: str, affinity: str | None, rr: bool,
                                              weights: list[int], tmp_path: Path) -> None:
    cfg = config(weights=weights, round_robin=rr, mode=mode, affinity=affinity)
    s = settings_for(cfg)
    assert (s.mode, s.affinity_header) == (mode, affinity)  # they follow the listener
    text = render(engine, cfg, s, workers="1")
    if affinity:
        assert ("balance hdr(sender-transfer-id)" if engine == "haproxy" else "hash $http_sender_transfer_id") in text
    assert "scaled" not in text  # every weight the model accepts fits both engines as it is
    if WEIGHT_MAX in weights and (rr or affinity):
        assert (f"weight {WEIGHT_MAX}" if engine == "haproxy" else f"weight={WEIGHT_MAX}") in text
    engine_check(engine, text, tmp_path)


def test_tcp_listener_has_no_affinity_and_flags_override() -> None:
    cfg = config(weights=[1, 1], round_robin=True, mode="tcp", affinity="sender-transfer-id")
    assert settings_for(cfg).affinity_header is None
    http = config(weights=[1, 1], round_robin=True, mode="http", affinity="x-key")
    assert settings_for(http).affinity_header == "x-key"
    assert settings_for(http, no_affinity=True).affinity_header is None
    assert settings_for(http, listen="127.0.0.1:9").listen == "127.0.0.1:9"
    with pytest.raises(ValueError, match="needs mode http"):
        settings_for(cfg, affinity_header="x-key")


def test_weights_are_mapped_keeping_shares() -> None:
    assert map_weights([3, 2, 1], 256) == ([3, 2, 1], False)
    assert map_weights([512, 256, 128], 256) == ([256, 128, 64], False)  # exact: the shares hold
    assert map_weights([999999, 1], 256) == ([256, 1], True)  # 1/1000000 cannot be kept: at least 1
    scaled, rounded = map_weights([1000, 333], 256)
    assert scaled == [256, 85] and rounded


def test_a_weight_past_the_engines_bound_is_scaled_and_said(tmp_path: Path) -> None:
    """A group stored before the bound existed (the model refuses such weights now): the export still runs,
    scaled into HAProxy's range, and the file names each share that moved."""
    members = (Member.model_construct(member_id="big", sequence=1, weight=999999),
               Member.model_construct(member_id="small", sequence=2, weight=1000))
    group = ConnectorGroup.model_construct(connection_timeout=5, retry_delay=0, load_balancing="Round Robin",
                                           members=members)
    cfg = BalancerConfig.model_construct(connector_id="old", label="old", connector_group=group,
                                         endpoints={"big": "127.0.0.1:1", "small": "127.0.0.1:2"},
                                         listener=config(weights=[1], round_robin=True, mode="tcp",
                                                         affinity=None).listener)
    text = to_haproxy(cfg, mode="tcp", listen=f"127.0.0.1:{free_port()}", workers="1")
    assert f"weights scaled into haproxy's 1..{HAPROXY_WEIGHT_MAX}, rounding these shares" in text
    assert "server big 127.0.0.1:1 weight 256" in text and "server small 127.0.0.1:2 weight 1" in text
    assert "small: weight 1000 -> 1, share 0.10% -> 0.39%" in text  # 1000/999999*256 rounds to 0: at least 1
    engine_check("haproxy", text, tmp_path)


def test_names_follow_ids() -> None:
    cfg = config(weights=[1, 1, 1], round_robin=True, mode="tcp", affinity=None, member_ids=["a+b", "a_b", "ok-1"])
    assert server_names(cfg.connector_group.ordered()) == ["a_b", "a_b_2", "ok-1"]
    assert haproxy_names(cfg).backend == "bd_grp-7" and haproxy_names(cfg).frontend == "bd_grp-7_in"


# from the management API ---------------------------------------------------------------------------------
@pytest.fixture
def api_group(spawn: Spawn, tmp_path: Path) -> tuple[Mgmt, str]:
    mgmt = Mgmt(spawn, tmp_path / "data")
    ids = [mgmt.register(f"c{i}", f"127.0.0.1:{21000 + i}") for i in range(3)]
    gid = mgmt.create_group("api group", ids, pool="edge", port=free_port(), mode="http")
    mgmt.edit(gid, lambda b: b["connectorGroup"]["members"][0].update(weight=WEIGHT_MAX))
    return mgmt, gid


def export_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BALANCEDESK, "export", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=60)


@pytest.mark.parametrize("engine", ENGINES)
def test_export_from_the_api_with_a_password(engine: str, api_group: tuple[Mgmt, str], tmp_path: Path) -> None:
    mgmt, gid = api_group
    run = export_cli("--api", mgmt.url, "--group", gid, "--to", engine, "--user", "admin",
                     "--password-env", "BD_PW", env={"BD_PW": ADMIN_PASSWORD})
    assert run.returncode == 0, run.stderr
    text = run.stdout
    assert "mode http, affinity by header sender-transfer-id" in text  # the listener's default affinity
    assert (f"weight {WEIGHT_MAX}" if engine == "haproxy" else f"weight={WEIGHT_MAX}") in text
    assert f"bd_{gid}" in text if engine == "haproxy" else "upstream api_group" in text
    engine_check(engine, text, tmp_path)


def test_export_from_the_api_with_a_token(api_group: tuple[Mgmt, str], tmp_path: Path) -> None:
    mgmt, gid = api_group
    token = mgmt.token("edge", tmp_path)
    out = tmp_path / "out.cfg"
    run = export_cli("--api", mgmt.url, "--group", gid, "--to", "haproxy", "--token-file", str(token),
                     "--pool", "edge", "-o", str(out))
    assert run.returncode == 0, run.stderr
    assert "balance hdr(sender-transfer-id)" in out.read_text()
    engine_check("haproxy", out.read_text(), tmp_path)


@pytest.mark.parametrize(("args", "says"), [
    (["--group", "nope", "--user", "admin", "--password-env", "BD_PW"], "group nope from"),
    (["--group", "{gid}", "--user", "admin", "--password-env", "BD_NOT_SET"], "BD_NOT_SET is not set"),
    (["--group", "{gid}"], "--token-file F (a balancer token) or --user U"),
    (["--user", "admin", "--password-env", "BD_PW"], "--api needs --group ID"),
    (["--group", "{gid}", "--user", "admin", "--password-env", "BD_WRONG"], "401"),
])
def test_export_from_the_api_refuses_with_a_reason(args: list[str], says: str, api_group: tuple[Mgmt, str]) -> None:
    mgmt, gid = api_group
    run = export_cli("--api", mgmt.url, "--to", "haproxy", *[a.format(gid=gid) for a in args],
                     env={"BD_PW": ADMIN_PASSWORD, "BD_WRONG": "not-the-password"})
    assert run.returncode == 2 and run.stdout == "", run
    assert says in run.stderr, run.stderr


def test_export_wants_one_source() -> None:
    run = export_cli("--to", "nginx")
    assert run.returncode == 2 and "give --config FILE or --api URL --group ID" in run.stderr


