#!/usr/bin/env python3
"""UDP probe for the NAT lab (scripts/natlab): RFC 5780-style NAT
classification, a simple simultaneous hole punch, and RTT.

  server   --addr IP [--addr IP ...] --port P1 --port P2
           Answers on every (addr, port). Two addresses and two ports per
           family let a client ask for a reply "from the other port" or "from
           the other address and port". Also a rendezvous for `punch` and an
           echo for `rtt`.
  classify --server IP1 --alt IP2 --port P1 --alt-port P2
           Prints {"mapping": EIM|ADM|APDM, "filtering": EIF|ADF|APDF, ...}.
  punch    --server IP --port P --room R --me a --peer b [--timeout S]
           Learns the peer's mapped address through the server, then both
           sides send to each other for --timeout seconds; exit 0 when a
           packet crossed each way (answering where the peer's packets came
           from, i.e. learning peer-reflexive addresses).
  rtt      --server IP --port P [--count N]
           Prints {"min_ms": ..., "replies": ...}; exit 1 when nothing came back.

Messages are small JSON objects. Stdlib only; every wait is bounded.
"""
import argparse
import ipaddress
import json
import os
import select
import socket
import sys
import time


def family_of(ip):
    return socket.AF_INET6 if ipaddress.ip_address(ip).version == 6 else socket.AF_INET


def ep(addr):
    """Endpoint as [ip, port] (JSON-friendly, comparable)."""
    return [addr[0], addr[1]]


def send(sock, dest, msg):
    try:
        sock.sendto(json.dumps(msg).encode(), dest)
    except OSError:
        pass  # e.g. EPERM from a local firewall drop: same as a lost packet


def recv(sock, timeout):
    """One JSON message and its source, or (None, None) after timeout seconds."""
    r, _, _ = select.select([sock], [], [], max(timeout, 0))
    if not r:
        return None, None
    try:
        data, src = sock.recvfrom(2048)
        return json.loads(data), src
    except (OSError, ValueError):
        return None, None


# ---------------------------------------------------------------- server


def serve(args):
    socks = {}
    for a in args.addr:
        for p in args.port:
            s = socket.socket(family_of(a), socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((a, p))
            socks[(a, p)] = s
    rooms = {}
    by_fd = {s.fileno(): (k, s) for k, s in socks.items()}

    def other(local, change_addr):
        la, lp = local
        ports = [p for p in args.port if p != lp]
        addrs = [a for a in args.addr if a != la and family_of(a) == family_of(la)]
        if not ports or (change_addr and not addrs):
            return None
        return socks.get((addrs[0] if change_addr else la, ports[0]))

    print("ready", flush=True)
    while True:
        r, _, _ = select.select(list(socks.values()), [], [])
        for s in r:
            local, _ = by_fd[s.fileno()]
            try:
                data, src = s.recvfrom(2048)
                msg = json.loads(data)
                op = msg.get("op")
            except (OSError, ValueError, AttributeError):
                continue
            if op == "echo":
                s.sendto(data, src)
            elif op == "map":
                via = msg.get("via", "same")
                out = s if via == "same" else other(local, via == "addr+port")
                if out is not None:
                    send(out, src, {"tid": msg.get("tid"), "mapped": ep(src)})
            elif op == "reg":
                room = rooms.setdefault(str(msg.get("room")), {})
                room[str(msg.get("me"))] = ep(src)
                send(s, src, {"tid": msg.get("tid"), "mapped": ep(src),
                              "peer": room.get(str(msg.get("peer")))})


# ---------------------------------------------------------------- client


def new_sock(server_ip):
    s = socket.socket(family_of(server_ip), socket.SOCK_DGRAM)
    s.bind(("::" if family_of(server_ip) == socket.AF_INET6 else "0.0.0.0", 0))
    return s


def request(sock, dest, msg, tries=3, wait=0.2):
    """Sends msg (with a fresh tid) up to `tries` times; the matching reply or None."""
    tid = os.urandom(6).hex()
    msg = dict(msg, tid=tid)
    for _ in range(tries):
        send(sock, dest, msg)
        deadline = time.monotonic() + wait
        while True:
            reply, _ = recv(sock, deadline - time.monotonic())
            if reply is None:
                break
            if isinstance(reply, dict) and reply.get("tid") == tid:
                return reply
    return None


RANK = {"EIM": 0, "ADM": 1, "APDM": 2}


def mapping_test(args):
    """RFC 5780 4.3 on one fresh socket: (behaviour, [mapped addresses], socket) or error."""
    s = new_sock(args.server)
    seen = []
    for dest in ((args.server, args.port), (args.alt, args.port), (args.alt, args.alt_port)):
        r = request(s, dest, {"op": "map"})
        if r is None:
            s.close()
            return "no reply from %s:%s" % dest, seen, None
        seen.append(r["mapped"])
        if len(seen) == 2 and seen[0] == seen[1]:
            return "EIM", seen, s
    return ("ADM" if seen[2] == seen[1] else "APDM"), seen, s


def classify(args):
    p1 = (args.server, args.port)
    # Mapping, twice: an endpoint-dependent NAT drawing ports at random from a
    # small range (snat 20000-20999 random) can hand out the same port twice
    # by chance (1 in 1000) and look less dependent than it is; it can never
    # look more dependent, so the most dependent result of two runs is right.
    mapping, mapped, s = None, None, None
    for _ in range(2):
        m, seen, sock = mapping_test(args)
        if sock is None:
            print(json.dumps({"error": m, "mapped": seen}))
            return 2
        if mapping is None or RANK[m] > RANK[mapping]:
            mapping = m
        if s is None:
            s, mapped = sock, seen
        else:
            sock.close()
    # the address the host itself sends from (the socket is bound to the wildcard)
    probe = socket.socket(family_of(args.server), socket.SOCK_DGRAM)
    probe.connect(p1)
    local = [probe.getsockname()[0], s.getsockname()[1]]
    probe.close()
    natted = mapped[0] != local
    s.close()
    # Filtering (RFC 5780 4.4), each test on a fresh socket so earlier
    # traffic cannot have opened the filter already.
    s = new_sock(args.server)
    if request(s, p1, {"op": "map", "via": "addr+port"}) is not None:
        filtering = "EIF"
    else:
        s.close()
        s = new_sock(args.server)
        filtering = "ADF" if request(s, p1, {"op": "map", "via": "port"}) is not None else "APDF"
    s.close()
    print(json.dumps({"mapping": mapping, "filtering": filtering, "mapped": mapped[0],
                      "local": local, "natted": natted, "mappings": mapped}))
    return 0


def punch(args):
    server = (args.server, args.port)
    s = new_sock(args.server)
    # Waiting for the peer to show up is bounded separately, so a slow start
    # of the other side never eats into the punching time.
    deadline = time.monotonic() + args.register_timeout
    peer = None
    while peer is None and time.monotonic() < deadline:
        r = request(s, server, {"op": "reg", "room": args.room, "me": args.me,
                                "peer": args.peer}, tries=1, wait=0.2)
        if r is not None and r.get("peer"):
            peer = tuple(r["peer"])
            mapped = r["mapped"]
        elif r is not None:
            time.sleep(0.1)
    if peer is None:
        print(json.dumps({"ok": False, "error": "peer never registered"}))
        return 1
    deadline = time.monotonic() + args.timeout
    # Keep registering while punching so a late peer still learns our address.
    targets = {peer}
    got_punch = got_ack = None
    done_at = None
    next_send = 0.0
    while time.monotonic() < deadline:
        now = time.monotonic()
        if done_at is not None and now >= done_at:
            break
        if now >= next_send:
            for t in targets:
                send(s, t, {"op": "punch", "me": args.me})
            send(s, server, {"op": "reg", "room": args.room, "me": args.me, "peer": args.peer})
            next_send = now + args.interval
        msg, src = recv(s, min(next_send, deadline) - time.monotonic())
        if msg is None or src is None or src[:2] == server or not isinstance(msg, dict):
            continue
        if msg.get("op") == "punch" and msg.get("me") == args.peer:
            got_punch = ep(src)
            targets.add(tuple(src[:2]))  # peer reflexive: answer where it came from
            send(s, src, {"op": "ack", "me": args.me})
        elif msg.get("op") == "ack" and msg.get("me") == args.peer:
            got_ack = ep(src)
        if got_punch and got_ack and done_at is None:
            # linger so the peer gets its ack too
            done_at = time.monotonic() + args.linger
    ok = bool(got_punch and got_ack)
    print(json.dumps({"ok": ok, "mapped": mapped, "peer": list(peer), "punch_from": got_punch,
                      "ack_from": got_ack}))
    return 0 if ok else 1


def rtt(args):
    s = new_sock(args.server)
    rtts = []
    for i in range(args.count):
        t0 = time.monotonic()
        if request(s, (args.server, args.port), {"op": "echo", "n": i}, tries=1,
                   wait=args.wait) is not None:
            rtts.append((time.monotonic() - t0) * 1000)
    out = {"replies": len(rtts), "sent": args.count}
    if rtts:
        out["min_ms"] = round(min(rtts), 3)
        out["max_ms"] = round(max(rtts), 3)
    print(json.dumps(out))
    return 0 if rtts else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("server")
    a.add_argument("--addr", action="append", required=True)
    a.add_argument("--port", action="append", type=int, required=True)
    a = sub.add_parser("classify")
    a.add_argument("--server", required=True)
    a.add_argument("--alt", required=True)
    a.add_argument("--port", type=int, required=True)
    a.add_argument("--alt-port", type=int, required=True)
    a = sub.add_parser("punch")
    a.add_argument("--server", required=True)
    a.add_argument("--port", type=int, required=True)
    a.add_argument("--room", required=True)
    a.add_argument("--me", required=True)
    a.add_argument("--peer", required=True)
    a.add_argument("--timeout", type=float, default=5.0, help="seconds of punching")
    a.add_argument("--register-timeout", type=float, default=10.0)
    a.add_argument("--interval", type=float, default=0.05)
    a.add_argument("--linger", type=float, default=0.5)
    a = sub.add_parser("rtt")
    a.add_argument("--server", required=True)
    a.add_argument("--port", type=int, required=True)
    a.add_argument("--count", type=int, default=5)
    a.add_argument("--wait", type=float, default=2.0)
    args = ap.parse_args()
    return {"server": serve, "classify": classify, "punch": punch, "rtt": rtt}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
