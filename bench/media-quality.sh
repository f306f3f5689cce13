#!/usr/bin/env bash
# Sound quality of real calls on bad networks, in the NAT lab:
#   scripts/bench media-quality [CASE...]   (CASE: 0 2 5 10 20 burst jitter, or e.g. 20:relay)
# A speech sample (espeak-ng, made here) is sent both ways through a real call
# (wzp-relay, `wzp listen`, `wzp call`, --send/--record) between two hosts of
# a prc-prc lab with 20 ms one-way delay per host, under random loss
# 0/2/5/10/20 %, Gilbert-Elliott burst loss (~8 % in bursts of 4 frames on
# average) and reordering jitter (0-30 ms extra per packet), direct and
# through the relay (--no-direct). Each case runs twice in the same lab: with
# adaptation and redundancy (the default) and with --no-adapt (the reference:
# fixed 32 kbit/s, 10 % FEC, no redundancy); 10, 20 and burst also with
# --parity (XOR parity across frames instead of copies).
# Per case and direction: frames received, shares concealed and rebuilt,
# single losses rebuilt, waveform similarity (wzp-wavcmp), the send-to-play
# delay (play start - send start + the recording's lag against the file, per
# 200 ms window; the median over the windows that match, or the whole file's lag
# when fewer than 10 match: the network, the playout buffer and the codec; no
# sound devices) and the E-model
# MOS (ITU-T G.107; the assumptions are printed). Ends with
#   media-quality: mos_0=.. mos_5=.. mos_10=.. mos_20=.. mos_burst=.. ref_mos_20=..
#                  fec_single_pct=.. delay_ms=.. late_first_settle_ms=..
#                  parity_mos_10=.. parity_mos_20=.. parity_mos_burst=..
# (MOS: the mean of both directions, direct and relayed where both ran;
# fec_single_pct: single losses rebuilt, of those whose next packet carried
# FEC, over all adaptive cases; delay_ms: the send-to-play delay at 0 % loss;
# late_first_settle_ms: bench_late_start on the same speech, the worst of a
# first packet 100/150/200 ms late: how long until the playout delay stays
# within 20 ms of its target).
# Path tcp: both routers forward no UDP (the relay's TLS-over-TCP service is
# the only way out, as on a hotel network) and drop --tcp-loss-pct of the TCP
# segments; the delay columns p50/p99 are over the recording's 200 ms windows,
# so what TCP's retransmissions hold back shows (printed before the summary).
# Needs root (network namespaces).
set -uo pipefail
SRC="${WZP_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
NATLAB="$SRC/scripts/natlab"
BIN="${WZP_BIN_DIR:-$SRC/build/bin}"
export WZP_BIN_DIR="$BIN"
[ "$(id -u)" = 0 ] || { echo "media-quality: needs root (network namespaces)" >&2; exit 77; }
for b in wzp wzp-relay wzp-wavcmp wzp-netdelay; do
    [ -x "$BIN/$b" ] || { echo "media-quality: $BIN/$b not built (scripts/build default)" >&2; exit 77; }
done
for t in espeak-ng python3; do
    command -v "$t" >/dev/null || { echo "media-quality: $t not installed (scripts/deps)" >&2; exit 77; }
done

# name: path natlab-up-options
ALL_CASES=(
    "0:direct:"
    "2:direct:--loss-pct 2"
    "5:direct:--loss-pct 5"
    "10:direct:--loss-pct 10"
    "20:direct:--loss-pct 20"
    "burst:direct:--burst-loss 8,4"
    "jitter:direct:--reorder-ms 30"
    "20:relay:--loss-pct 20"
    "burst:relay:--burst-loss 8,4"
    "tcp0:tcp:"
    "tcp2:tcp:--tcp-loss-pct 2"
)
CASES=()
if [ $# -gt 0 ]; then
    for want in "$@"; do
        for c in "${ALL_CASES[@]}"; do
            [ "${c%%:*}" = "$want" ] || [ "${c%:*}" = "$want" ] && CASES+=("$c")
        done
    done
else
    CASES=("${ALL_CASES[@]}")
fi
[ ${#CASES[@]} -gt 0 ] || { echo "media-quality: no such case (0 2 5 10 20 burst jitter tcp0 tcp2)" >&2; exit 2; }

T=$(mktemp -d /tmp/wzp-bench-mq-XXXXXX)
LAB=""
cleanup() {
    [ -n "$LAB" ] && "$NATLAB" down "$LAB" >/dev/null 2>&1
    [ -n "${WZP_KEEP:-}" ] && echo "kept $T" >&2 || rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ~11 s of speech and 1.5 s of silence (the peer's playout drains before the hang-up)
espeak-ng -s 160 -w "$T/raw.wav" "The north wind and the sun were disputing which was the \
stronger, when a traveller came along wrapped in a warm cloak. They agreed that the one who \
first made the traveller take his cloak off should be considered stronger." 2>/dev/null
python3 - "$T/raw.wav" "$T/speech.wav" <<'PY' || { echo "media-quality: no speech sample" >&2; exit 1; }
import sys, wave
r = wave.open(sys.argv[1])
p = r.getparams()
data = r.readframes(p.nframes)
w = wave.open(sys.argv[2], "wb")
w.setparams(p)
w.writeframes(data + b"\0" * (p.sampwidth * p.nchannels * int(p.framerate * 1.5)))
PY

# The late first packet, through the whole receiver on a virtual clock (no lab
# needed: the NAT lab cannot hold back just the first media datagram).
LATE_BIN="${WZP_BENCH_DIR:-$BIN/../bench}/bench_late_start"
LATE_SETTLE=-
if [ -x "$LATE_BIN" ]; then
    "$LATE_BIN" "$T/speech.wav" >"$T/late.txt" 2>&1 && cat "$T/late.txt" && echo
    LATE_SETTLE="$(sed -n 's/^late-start:.* settle_ms_max=\([-0-9]*\).*/\1/p' "$T/late.txt")"
fi
export LATE_SETTLE

wait_for() { # file regex seconds
    local i
    for i in $(seq $(($3 * 20))); do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

# One call in lab $LAB (dir $D, relay fingerprint $FP): tag, extra wzp options.
call() {
    local tag="$1" callee caller i
    shift
    callee="$("$NATLAB" spawn --lab "$LAB" b "$tag-b" env WZP_HOME="$D/home-b-$tag" "$BIN/wzp" listen \
        --once --relay "$RELAY" --relay-pin "$FP" --alias "bob$tag" --auto-answer \
        --send "$T/speech.wav" --record "$D/$tag-b.wav" --json "$@")"
    wait_for "$D/$tag-b.log" '"event":"registered"' 10 || { echo "callee $tag did not register" >&2; return 1; }
    caller="$("$NATLAB" spawn --lab "$LAB" a "$tag-a" timeout -k 5 -s INT 60 env WZP_HOME="$D/home-a-$tag" \
        "$BIN/wzp" call "bob$tag" --relay "$RELAY" --relay-pin "$FP" --send "$T/speech.wav" \
        --record "$D/$tag-a.wav" --json "$@")"
    while kill -0 "$caller" 2>/dev/null; do sleep 0.2; done
    for i in $(seq 100); do kill -0 "$callee" 2>/dev/null || break; sleep 0.05; done
    "$BIN/wzp-wavcmp" -v "$T/speech.wav" "$D/$tag-b.wav" 3 >"$D/$tag-ab.cmp" 2>&1
    "$BIN/wzp-wavcmp" -v "$T/speech.wav" "$D/$tag-a.wav" 3 >"$D/$tag-ba.cmp" 2>&1
    return 0
}

RESULTS="$T/results"
: >"$RESULTS"
for c in "${CASES[@]}"; do
    name="${c%%:*}" rest="${c#*:}"
    path="${rest%%:*}" opts="${rest#*:}" tcp_loss=""
    if [[ "$opts" =~ --tcp-loss-pct\ ([0-9.]+) ]]; then
        tcp_loss="${BASH_REMATCH[1]}"
        opts="${opts/--tcp-loss-pct $tcp_loss/}"
    fi
    # shellcheck disable=SC2086
    LAB="$("$NATLAB" up prc-prc --delay-ms 20 $opts 2>"$T/up.err" | tail -1)"
    [ -n "$LAB" ] || { echo "media-quality: lab did not come up: $(cat "$T/up.err")" >&2; exit 1; }
    eval "$(NATLAB_ID="$LAB" "$NATLAB" env)"
    D="$NATLAB_DIR" RELAY="$NATLAB_RELAY4:4433"
    # Path tcp: the routers forward no UDP. Other paths: no TCP, so a client
    # whose first UDP packets fell into a loss burst cannot fall back to the
    # relay's TLS/TCP service, where the lab's loss and delay (on UDP) would
    # not apply to its direction (one such call read 0 % loss and MOS 4.39).
    {
        echo "table inet mq_tcp {"
        echo "  chain fw {"
        echo "    type filter hook forward priority -20; policy accept;"
        if [ "$path" = tcp ]; then
            echo "    meta l4proto udp drop"
            # per mille, from numgen: 2 % drops 20 of every 1000 TCP segments at random
            [ -n "$tcp_loss" ] &&
                echo "    meta l4proto tcp numgen random mod 1000 < $(awk -v p="$tcp_loss" 'BEGIN { printf "%d", p * 10 }') drop"
        else
            echo "    meta l4proto tcp drop"
        fi
        echo "  }"
        echo "}"
    } >"$D/mq_tcp.nft"
    for r in ra rb; do
        ip netns exec "$LAB-$r" nft -f "$D/mq_tcp.nft" || { echo "media-quality: cannot set up $r" >&2; exit 1; }
    done
    "$NATLAB" spawn --lab "$LAB" relay relay env WZP_HOME="$D/home-relay" "$BIN/wzp-relay" \
        --listen "$RELAY" >/dev/null
    wait_for "$D/relay.log" "^wzp-relay: fingerprint" 10 || { echo "media-quality: relay did not start" >&2; exit 1; }
    FP="$(awk '$2 == "fingerprint" {print $3}' "$D/relay.log")"
    nd=()
    [ "$path" = relay ] || [ "$path" = tcp ] && nd=(--no-direct)
    modes=(adapt ref)
    # FEC across frames against copies, on random and bursty loss
    case "$name" in 10 | 20 | burst) modes+=(parity) ;; esac
    for mode in "${modes[@]}"; do
        extra=("${nd[@]}")
        [ "$mode" = ref ] && extra+=(--no-adapt)
        [ "$mode" = parity ] && extra+=(--parity)
        # A call whose set-up lost out to the loss (with TCP blocked, registration
        # or the end-to-end handshake can give up under bursts) runs again, 3 tries.
        for try in 1 2 3; do
            call "$mode" "${extra[@]}" || break
            grep -q play_started_ms "$D/$mode-a.log" && grep -q play_started_ms "$D/$mode-b.log" && break
            echo "media-quality: $name $path $mode: the call did not run (try $try): $(grep -m1 -h 'wzp call:\|wzp listen:' "$D/$mode-a.log" "$D/$mode-b.log")" >&2
        done
        for dir in ab ba; do
            rx=b tx=a
            [ "$dir" = ba ] && rx=a tx=b
            echo "$name $path $mode $dir $D/$mode-$rx.log $D/$mode-$tx.log $D/$mode-$dir.cmp" >>"$RESULTS"
        done
    done
    # keep the logs of this case for the report below
    mkdir -p "$T/keep/$name-$path"
    cp "$D"/*.log "$D"/*.cmp "$T/keep/$name-$path/" 2>/dev/null
    sed -i "s|$D|$T/keep/$name-$path|g" "$RESULTS"
    "$NATLAB" down "$LAB" >/dev/null 2>&1
    LAB=""
done

python3 - "$RESULTS" <<'PY'
import json, os, re, sys, statistics

# ITU-T G.107 E-model, simplified: defaults for everything but delay and loss.
R0 = 93.2   # basic signal-to-noise ratio with the default parameters
IE = 0.0    # equipment impairment of Opus wideband at these bitrates (assumed)
BPL = 20.0  # packet-loss robustness of Opus with its concealment (assumed)
BURST_R = 1.0  # random loss assumed (bursts are not credited)

def mos(delay_ms, ppl):
    d = max(delay_ms, 0.0)
    idd = 0.024 * d + (0.11 * (d - 177.3) if d > 177.3 else 0.0)
    ie_eff = IE + (95 - IE) * ppl / (ppl / BURST_R + BPL)
    r = R0 - idd - ie_eff
    if r <= 0:
        return 1.0
    if r >= 100:
        return 4.5
    return 1 + 0.035 * r + r * (r - 60) * (100 - r) * 7e-6

def summary(path):
    for line in open(path, errors="replace"):
        if line.startswith('{"event":"summary"'):
            return json.loads(line)
    return None

rows = []
for line in open(sys.argv[1]):
    name, path, mode, direction, rxlog, txlog, cmp = line.split()
    rx, tx = summary(rxlog), summary(txlog)
    c = open(cmp, errors="replace").read()
    m = re.search(r"ncc=([-0-9.]+) lag_ms=([-0-9.]+) win_median=([-0-9.]+)", c)
    if not rx or not tx or not m or "play_started_ms" not in rx or "send_started_ms" not in tx:
        rows.append((name, path, mode, direction, None))
        continue
    ncc, lag, win = float(m.group(1)), float(m.group(2)), float(m.group(3))
    expected = rx["frames_received"] + rx["frames_lost"]
    conc = 100.0 * rx["frames_concealed"] / expected if expected else 100.0
    rebuilt = 100.0 * (rx["frames_fec"] + rx["frames_redundancy"]) / expected if expected else 0
    delay = rx["play_started_ms"] - tx["send_started_ms"] + lag
    base = rx["play_started_ms"] - tx["send_started_ms"]
    wins = sorted(base + float(w.group(1)) for w in
                  re.finditer(r"window at [0-9.]+ s: lag ([-0-9.]+) ms ncc ([-0-9.]+)", c)
                  if float(w.group(2)) >= 0.5)
    pct = lambda q: wins[min(len(wins) - 1, int(q * len(wins)))] if wins else float("nan")
    # Time-scaling shifts the lag during the call, so one lag for the whole file can lock onto
    # the wrong period; the windows give the delay directly. Their median, not their mean: a
    # window of near-periodic speech now and then matches a wrong period seconds away.
    if len(wins) >= 10:
        delay = statistics.median(wins)
    rows.append((name, path, mode, direction, dict(
        recv=rx["frames_received"], sent=tx["frames_sent"], lost=rx["frames_lost"],
        late=rx["frames_late"], conc=conc, rebuilt=rebuilt, red=rx["frames_redundancy"],
        single=rx["losses_single"], single_ok=rx["losses_single_rebuilt"],
        sfec=rx["losses_single_fec"], sfec_ok=rx["losses_single_fec_rebuilt"], ncc=ncc, win=win,
        delay=delay, p50=pct(0.5), p99=pct(0.99), mos=mos(delay, conc), kbps=tx["bitrate_kbps"])))

print("media-quality: a speech sample both ways through a real call in the NAT lab (prc-prc,")
print("  20 ms one way per host); send-to-play delay = network + playout buffer + codec (no devices)")
print("  E-model (G.107, simplified): R = %.1f - Id(delay) - Ie_eff(Ppl), Ie = %g, Bpl = %g," % (R0, IE, BPL))
print("  BurstR = %g (random loss assumed), Ppl = frames concealed after FEC/redundancy," % BURST_R)
print("  Id = 0.024 d + 0.11 (d - 177.3) for d > 177.3 ms; MOS from R as in G.107 Annex B")
print()
hdr = "%-7s %-6s %-5s %-3s %6s %6s %5s %7s %7s %5s %7s %6s %6s %7s %6s %6s %6s %5s" % (
    "case", "path", "mode", "dir", "sent", "recv", "late", "conc%", "rebuilt%", "red",
    "single", "ncc", "win", "delay", "p50", "p99", "kbps", "MOS")
print(hdr)
agg = {}
for name, path, mode, direction, r in rows:
    if r is None:
        print("%-7s %-6s %-5s %-3s  (no result)" % (name, path, mode, direction))
        continue
    single = "%d/%d" % (r["single_ok"], r["single"])
    print("%-7s %-6s %-5s %-3s %6d %6d %5d %7.2f %7.2f %5d %7s %6.3f %6.3f %7.1f %6.1f %6.1f %6.1f %5.2f" % (
        name, path, mode, direction, r["sent"], r["recv"], r["late"], r["conc"], r["rebuilt"],
        r["red"], single, r["ncc"], r["win"], r["delay"], r["p50"], r["p99"], r["kbps"], r["mos"]))
    agg.setdefault((name, mode), []).append(r)

def mean_mos(name, mode):
    rs = agg.get((name, mode))
    return "%.2f" % statistics.mean(r["mos"] for r in rs) if rs else "-"

def singles(mode, key):
    return sum(r[key] for (n, m), rs in agg.items() if m == mode for r in rs)
single, single_ok = singles("adapt", "sfec"), singles("adapt", "sfec_ok")
print()
print("single losses rebuilt (adaptive / reference): %d/%d / %d/%d of all single losses; "
      "%d/%d / %d/%d of those whose next packet carried FEC (Opus leaves it out of some frames)" % (
          singles("adapt", "single_ok"), singles("adapt", "single"),
          singles("ref", "single_ok"), singles("ref", "single"),
          single_ok, single, singles("ref", "sfec_ok"), singles("ref", "sfec")))
d0 = agg.get(("0", "adapt"))
print()
print("reference (--no-adapt): " + " ".join(
    "mos_%s=%s" % (n, mean_mos(n, "ref")) for n in ("0", "2", "5", "10", "20", "burst", "jitter")))
def mean_of(name, mode, key):
    rs = agg.get((name, mode))
    return "%.2f" % statistics.mean(r[key] for r in rs) if rs else "-"
print("copies (default) vs XOR parity (--parity), MOS / concealed % / delay ms: " + "; ".join(
    "%s: %s/%s/%s vs %s/%s/%s" % (n, mean_of(n, "adapt", "mos"), mean_of(n, "adapt", "conc"),
                                  mean_of(n, "adapt", "delay"), mean_of(n, "parity", "mos"),
                                  mean_of(n, "parity", "conc"), mean_of(n, "parity", "delay"))
    for n in ("10", "20", "burst") if agg.get((n, "parity"))))
for n in ("tcp0", "tcp2"):
    rs = agg.get((n, "adapt"))
    if rs:
        print("relay over TLS/TCP, UDP blocked, %s: send-to-play delay p50=%.1f ms p99=%.1f ms "
              "(worst direction), concealed %.2f %%, MOS %.2f" % (
                  n, max(r["p50"] for r in rs), max(r["p99"] for r in rs),
                  max(r["conc"] for r in rs), statistics.mean(r["mos"] for r in rs)))
print("media-quality: mos_0=%s mos_5=%s mos_10=%s mos_20=%s mos_burst=%s ref_mos_20=%s "
      "fec_single_pct=%s delay_ms=%s late_first_settle_ms=%s parity_mos_10=%s parity_mos_20=%s "
      "parity_mos_burst=%s" % (
          mean_mos("0", "adapt"), mean_mos("5", "adapt"), mean_mos("10", "adapt"),
          mean_mos("20", "adapt"), mean_mos("burst", "adapt"), mean_mos("20", "ref"),
          "%.1f" % (100.0 * single_ok / single) if single else "-",
          "%.1f" % statistics.mean(r["delay"] for r in d0) if d0 else "-",
          os.environ.get("LATE_SETTLE") or "-", mean_mos("10", "parity"), mean_mos("20", "parity"),
          mean_mos("burst", "parity")))
PY
