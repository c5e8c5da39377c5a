"""The pure parts of the HAProxy engine: HAProxy's answers (in the shapes HAProxy 2.6 prints them) mapped onto
the contract, the events between two snapshots, the managed section of a config, ``show proc``, addresses."""

from __future__ import annotations

import pytest
from balancedesk.core.haproxy.deploy import parse_show_proc, sections, with_section
from balancedesk.core.haproxy.runtime import (
    Address,
    haproxy_problem,
    parse_address,
    parse_csv,
    parse_info,
    parse_servers_state,
)
from balancedesk.core.haproxy.stats import events_between, group_id_of, snapshot
from balancedesk.core.proxy.contract import AdminEvent, HealthEvent

HEADER = ("# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,"
          "weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,"
          "rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,"
          "hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,"
          "comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,"
          "check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,"
          "cookie,mode,algo,conn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,reuse,"
          "cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,ttime_max,eint,idle_conn_cur,"
          "safe_conn_cur,used_conn_cur,need_conn_est,uweight,agg_server_status,agg_server_check_status,"
          "agg_check_status,-,ssl_sess,ssl_reused_sess,ssl_failed_handshake,h2_headers_rcvd,h2_data_rcvd,")
COLS = HEADER[2:].rstrip(",").split(",")


def row(**values: str) -> str:
    return ",".join(values.get(c, "") for c in COLS) + ","


def stat_text(a: dict[str, str], b: dict[str, str]) -> str:
    base = {"pxname": "bd_g1"}
    return "\n".join([
        HEADER,
        row(pxname="bd_g1_in", svname="FRONTEND", status="OPEN"),
        row(**{**base, **a, "svname": "m1"}),
        row(**{**base, **b, "svname": "m2"}),
        row(**base, svname="BACKEND", status="UP", scur="3", stot="30", qcur="1", econ="1", eresp="0", mode="http"),
        "",
    ])


STATE = ("1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight "
         "srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state "
         "srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port "
         "srv_check_addr srv_agent_addr srv_agent_port\n"
         "3 bd_g1 1 m1 127.0.0.1 2 {a1} {uw1} 3 12 6 3 4 6 0 0 0 - 5001 - 0 0 - - 0\n"
         "3 bd_g1 2 m2 127.0.0.1 0 {a2} 2 2 4 6 3 4 6 0 0 0 - 5002 - 0 0 - - 0\n")
INFO = "Name: HAProxy\nVersion: 2.6.12-1+deb12u4\nUptime_sec: 42\nPid: 77\n"


def snap(a: dict[str, str], b: dict[str, str], *, a1: int = 0, uw1: int = 3, a2: int = 0, now: float = 10.0):  # type: ignore[no-untyped-def]
    return snapshot("bd_g1", parse_csv(stat_text(a, b)),
                    parse_servers_state(STATE.format(a1=a1, uw1=uw1, a2=a2)), parse_info(INFO), now=now,
                    labels={"m1": "first"})


UP = {"status": "UP", "scur": "2", "stot": "20", "qcur": "1", "econ": "1", "eresp": "2", "bin": "100", "bout": "200",
      "check_status": "L4OK", "last_chk": "", "lastchg": "12", "downtime": "0", "hrsp_2xx": "19", "hrsp_5xx": "1",
      "hrsp_1xx": "0", "hrsp_3xx": "0", "hrsp_4xx": "0", "weight": "3", "addr": "127.0.0.1:5001"}
DOWN = {"status": "DOWN", "scur": "0", "stot": "10", "check_status": "L4CON", "last_chk": "Connection refused",
        "lastchg": "4", "downtime": "9", "weight": "2"}


def test_a_backend_maps_onto_the_contract() -> None:
    s = snap(UP, DOWN)
    assert s.group["connectorID"] == "g1" and s.mode == "http" and s.data_plane == "haproxy 2.6.12-1+deb12u4"
    assert s.uptime_s == 42 and s.now == 10.0
    assert s.totals == {"active": 3, "total": 30, "queued": 1, "failures": 1}
    m1, m2 = s.members
    assert (m1.member_id, m1.label, m1.endpoint, m1.weight, m1.sequence) == ("m1", "first", "127.0.0.1:5001", 3, 1)
    assert (m1.state, m1.active, m1.total, m1.queued, m1.failures) == ("up", 2, 20, 1, 3)
    assert (m1.bytes_in, m1.bytes_out, m1.down_total_s) == (100, 200, 0.0)
    assert dict(m1.status_classes) == {"1xx": 0, "2xx": 19, "3xx": 0, "4xx": 0, "5xx": 1}
    assert m1.check_ok is True and m1.check_state == "up" and m1.check_ago_s is None  # HAProxy says no age
    assert m1.configured_share == 1.0 and m1.actual_share == pytest.approx(20 / 30)  # m2 is down: no new ones
    assert m2.state == "down" and m2.health == "disabled" and m2.check_ok is False and m2.check_state == "down"
    assert m2.check_text() == "check failed: L4CON Connection refused" and m2.down_total_s == 9.0
    assert s.overrides == ()
    assert group_id_of("other") == "other"


def test_runtime_drain_maintenance_and_weight_are_overrides() -> None:
    s = snap({**UP, "status": "DRAIN"}, {**DOWN, "status": "MAINT"}, a1=0x08, uw1=1, a2=0x01)
    m1, m2 = s.members
    assert (m1.admin, m1.state, m1.weight) == ("drain", "draining", 1)
    assert m2.admin == "disabled"
    assert list(s.overrides) == [{"connectorID": "g1", "memberID": "m1", "state": "drain", "weight": 1},
                                 {"connectorID": "g1", "memberID": "m2", "state": "disabled"}]
    with pytest.raises(KeyError):
        snapshot("nope", parse_csv(stat_text(UP, DOWN)), [], {}, now=0.0)


def test_events_are_the_changes_between_two_snapshots() -> None:
    first = snap(UP, UP, now=1.0)
    assert events_between(None, first, first_seq=1) == []
    later = snap({**UP, "status": "DRAIN"}, DOWN, a1=0x08, now=2.0)
    evs = events_between(first, later, first_seq=7)
    assert evs == [AdminEvent(7, 2.0, "m1", "drain"), HealthEvent(8, 2.0, "m2", "disabled", None,
                                                                 "L4CON Connection refused")]
    back = events_between(later, snap(UP, UP, now=3.0), first_seq=9)
    assert [(e.member_id, getattr(e, "state", None)) for e in back] == [("m1", "enabled"), ("m2", "enabled")]


ADMIN_PART = "global\n    stats socket /run/a.sock level admin\n\n# the admin's own comment\nlisten x\n    bind :1\n"


def test_managed_section_is_added_replaced_and_leaves_the_rest_alone() -> None:
    text, v, changed = with_section(ADMIN_PART, "g1", "backend bd_g1\n    server a 127.0.0.1:1\n")
    assert (v, changed) and text.startswith(ADMIN_PART)
    assert "# BEGIN balancedesk group g1 version 1\nbackend bd_g1\n" in text
    assert text.endswith("# END balancedesk group g1\n")
    again, v2, changed2 = with_section(text, "g1", "backend bd_g1\n    server a 127.0.0.1:1\n")
    assert (again, v2, changed2) == (text, 1, False)
    two, _, _ = with_section(text + "# after\n", "g2", "backend bd_g2\n")
    new, v3, changed3 = with_section(two, "g1", "backend bd_g1\n    server a 127.0.0.1:2\n")
    assert (v3, changed3) == (2, True)
    assert new.replace("127.0.0.1:2", "127.0.0.1:1").replace("version 2", "version 1") == two  # in place
    assert [(s.group_id, s.version) for s in sections(new)] == [("g1", 2), ("g2", 1)]
    from balancedesk.core.haproxy.deploy import Origin

    pinned, v4, _ = with_section(new, "g1", "backend bd_g1\n    server a 127.0.0.1:2\n", Origin("edge", 7))
    assert v4 == 3 and "# BEGIN balancedesk group g1 version 3 pool edge saved 7\n" in pinned
    assert next(s for s in sections(pinned) if s.group_id == "g1").saved == 7


def test_show_proc_and_addresses() -> None:
    procs = parse_show_proc(
        "#<PID>          <type>          <reloads>       <uptime>        <version>      \n"
        "13534           master          2 [failed: 1]   0d00h00m10s     2.6.12-1+deb12u4\n"
        "# workers\n13858           worker          0               0d00h00m01s     2.6.12-1+deb12u4\n"
        "# old workers\n13537           worker          1               0d00h00m09s     2.6.12-1+deb12u4\n"
        "# programs\n\n")
    assert [(p.pid, p.kind, p.reloads, p.failed, p.old) for p in procs] == [
        (13534, "master", 2, 1, False), (13858, "worker", 0, 0, False), (13537, "worker", 1, 0, True)]
    assert parse_address("/run/haproxy/admin.sock") == Address(path="/run/haproxy/admin.sock")
    assert parse_address("unix@/run/x.sock") == Address(path="/run/x.sock")
    assert parse_address("ipv4@127.0.0.1:9999") == Address(host="127.0.0.1", port=9999)
    with pytest.raises(ValueError):
        parse_address("not an address")
    assert haproxy_problem("/run/x.sock", "bd_g1") == ""
    assert "host:port" in haproxy_problem("nope", "bd_g1")
    assert "backend" in haproxy_problem("/run/x.sock", "")
