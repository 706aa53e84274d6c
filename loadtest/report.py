"""Turns the bench's raw outputs into loadtest/RESULTS.md and a chart.

usage: report.py RAW_DIR LOADTEST_DIR

Every figure comes from a file in RAW_DIR written by loadtest/bench.sh in
the same run; limits are measured in that run too, and each scenario is
reported as a ratio to its limit (the machine is shared and noisy, so
absolute numbers drift while ratios hold).
"""

import datetime
import json
import os
import platform
import re
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

raw_dir, out_dir = sys.argv[1], sys.argv[2]


def read(name):
    path = os.path.join(raw_dir, name + ".txt")
    return open(path).read() if os.path.exists(path) else ""


def ms(value, unit):
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(name):
    text = read(name)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    pct = {p: ms(v, u) for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    socket_errors = re.search(r"Socket errors: (.*)", text)
    requests = re.search(r"^\s*(\d+) requests in", text, re.M)
    cpu = re.search(r"^server_cpu_seconds: ([\d.]+)", text, re.M)
    return {
        # The server's CPU per answered request (bench.sh's `timed`), in µs.
        "cpu_us": float(cpu.group(1)) * 1e6 / int(requests.group(1)) if cpu and requests and int(requests.group(1)) else None,
        "rps": float(rps.group(1)) if rps else None,
        "p50": pct.get("50"),
        "p99": pct.get("99"),
        "errors": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else None,
    }


def pgbench(name):
    text = read(name)
    tps = re.search(r"tps = ([\d.]+)", text)
    avg = re.search(r"latency average = ([\d.]+) ms", text)
    return {"rps": float(tps.group(1)) if tps else None, "avg": float(avg.group(1)) if avg else None}


def redis_get():
    text = read("redis_get")
    found = re.search(r"GET: ([\d.]+) requests per second(?:, p50=([\d.]+) msec)?", text)
    return {"rps": float(found.group(1)) if found else None, "p50": float(found.group(2)) if found and found.group(2) else None}


def result(name):
    for line in read(name).splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    return {}


def fmt(value, digits=0):
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def ratio(a, b):
    return a / b if a and b else None


cores = os.cpu_count() or 2
def median(values):
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def rounds(limit_name, name, read_limit=None):
    """A scenario and its limit, measured in paired rounds (NAME_rN).

    Each figure is the median over the rounds, and so is each ratio: the
    median of the per-round ratios (each pair ran back to back), not the
    ratio of the medians."""
    read_limit = read_limit or wrk
    pairs = []
    while os.path.exists(os.path.join(raw_dir, f"{name}_r{len(pairs) + 1}.txt")):
        n = len(pairs) + 1
        pairs.append((read_limit(f"{limit_name}_r{n}"), wrk(f"{name}_r{n}")))
    if not pairs:  # a raw directory from before the rounds
        pairs = [(read_limit(limit_name), wrk(name))]

    def summary(runs):
        merged = {k: median([run.get(k) for run in runs]) for k in ("rps", "p50", "p99", "cpu_us", "avg")}
        merged["errors"] = sum(run.get("errors", 0) for run in runs)
        merged["socket_errors"] = "; ".join(run["socket_errors"] for run in runs if run.get("socket_errors")) or None
        return merged

    rps = [ratio(c["rps"], f["rps"]) for f, c in pairs]
    p99 = [ratio(c["p99"], f.get("p99")) for f, c in pairs]
    return summary([f for f, _ in pairs]), summary([c for _, c in pairs]), rps, p99


floor = wrk("floor")
read_floor, cached, read_ratios, read_p99_ratios = rounds("read_floor", "cached_get")
# The A/A pair (the floor against a twin of itself), when the run had one.
has_twin = os.path.exists(os.path.join(raw_dir, "read_floor_twin_r1.txt"))
_, twin, twin_ratios, twin_p99_ratios = rounds("read_floor", "read_floor_twin") if has_twin else (None, None, [], [])
# The floor padded to the api-node's instructions per read, when the run had it.
has_padded = os.path.exists(os.path.join(raw_dir, "read_floor_padded_r1.txt"))
_, padded, padded_ratios, padded_p99_ratios = rounds("read_floor", "read_floor_padded") if has_padded else (None, None, [], [])
pg_create, create, write_ratios, _ = rounds("pgbench_create", "create_task", pgbench)
paced = result("cached_get_during_storm")
storm_reads = {"rps": paced.get("rate"), "p50": paced.get("p50_ms"), "p99": paced.get("p99_ms"),
               "errors": paced.get("failed", 0), "socket_errors": None}
login = wrk("login_storm")
pg_read, rget = pgbench("pgbench_read"), redis_get()
hash_lines = read("hash_time").split("\n")
hash_ms = float(hash_lines[0].strip() or "nan")
parallel = re.search(r"parallel \d+ threads: ([\d.]+) hashes/s", read("hash_time"))
parallel_hashes = float(parallel.group(1)) if parallel else None
login_limit = cores / (hash_ms / 1000.0) if hash_ms == hash_ms else None
idle, fanout, broadcast = result("ws_idle"), result("ws_fanout"), result("ws_broadcast")
tcp_floor = result("tcp_floor")
idle_deflate = result("ws_idle_deflate")
fanout_plain, fanout_deflate = result("ws_fanout_described"), result("ws_fanout_deflate")
broadcast_plain, broadcast_deflate = result("ws_broadcast_described"), result("ws_broadcast_deflate")


def verdict(ok):
    return "✅ met" if ok else "❌ missed"


rows = []
rows.append(("Bare hyper server, fixed JSON (64 conns) — the floor", f"{fmt(floor['rps'])} req/s", fmt(floor["p50"], 2), fmt(floor["p99"], 2), "–", "1.00", "limit"))
rows.append((f"The cached-read floor: the same server doing one Redis `GET` per request (same crate, multiplexed `ConnectionManager`; no auth, routing or metrics; {fmt(read_floor['cpu_us'], 1)} µs of its CPU per request); median of the rounds",
             f"{fmt(read_floor['rps'])} req/s", fmt(read_floor["p50"], 2), fmt(read_floor["p99"], 2), "–", "1.00", "limit"))
r, p99_ratio = median(read_ratios), median(read_p99_ratios)
per_round = ", ".join(f"{fmt(a, 2)} (p99 ×{fmt(b, 2)})" for a, b in zip(read_ratios, read_p99_ratios))
rows.append((f"Cached `GET /api/tasks/:id` (64 conns; token, revocation, ownership and ETag checked; {fmt(cached['cpu_us'], 1)} µs of api-node CPU per request); median of {len(read_ratios)} paired rounds: {per_round}",
             f"{fmt(cached['rps'])} req/s", fmt(cached["p50"], 2), fmt(cached["p99"], 2),
             "cached-read floor", f"{fmt(r, 2)}; p99 ×{fmt(p99_ratio, 2)}; ×{fmt(ratio(cached['rps'], floor['rps']), 2)} of the bare floor",
             f"≥ 0.85 with p99 ≤ 1.2× the floor's: {verdict(r is not None and r >= 0.85 and p99_ratio is not None and p99_ratio <= 1.2)}"))
if has_twin:
    r, p99_ratio = median(twin_ratios), median(twin_p99_ratios)
    per_round = ", ".join(f"{fmt(a, 2)} (p99 ×{fmt(b, 2)})" for a, b in zip(twin_ratios, twin_p99_ratios))
    p99s = [v for v in twin_p99_ratios if v is not None]
    spread = f"p99 ×{fmt(min(p99s), 2)}–×{fmt(max(p99s), 2)}" if p99s else "–"
    rows.append((f"A/A: a twin of the cached-read floor (the same binary on another port, run on the floor's other side in each round) against it; median of {len(twin_ratios)} paired rounds: {per_round}",
                 f"{fmt(twin['rps'])} req/s", fmt(twin["p50"], 2), fmt(twin["p99"], 2),
                 "cached-read floor", f"{fmt(r, 2)}; p99 ×{fmt(p99_ratio, 2)}; rounds {spread}",
                 "reference: the ratios two identical servers get here (1.00 on a quiet machine)"))
if has_padded:
    r, p99_ratio = median(padded_ratios), median(padded_p99_ratios)
    per_round = ", ".join(f"{fmt(a, 2)} (p99 ×{fmt(b, 2)})" for a, b in zip(padded_ratios, padded_p99_ratios))
    rows.append((f"The cached-read floor padded with busy work to the api-node's instructions per cached read, sent the api-node's request (path and token); median of {len(padded_ratios)} paired rounds: {per_round}",
                 f"{fmt(padded['rps'])} req/s", fmt(padded["p50"], 2), fmt(padded["p99"], 2),
                 "cached-read floor", f"{fmt(r, 2)}; p99 ×{fmt(p99_ratio, 2)}",
                 "reference: what the api-node's count of instructions alone costs here"))
rows.append(("redis-benchmark `GET` (64 conns) — what a cached read needs", f"{fmt(rget['rps'])} req/s", fmt(rget["p50"], 2), "–", "–", "–", "limit (reference)"))
r = median(write_ratios)
write_rounds = ", ".join(fmt(a, 2) for a in write_ratios)
rows.append((f"`POST /api/tasks` (16 conns, 64 users)" + (f"; median of {len(write_ratios)} paired rounds with pgbench: {write_rounds}" if len(write_ratios) > 1 else ""), f"{fmt(create['rps'])} req/s", fmt(create["p50"], 2), fmt(create["p99"], 2), "pgbench", fmt(r, 2),
             f"≥ 0.80: {verdict(r is not None and r >= 0.8)}"))
rows.append(("pgbench, the same transaction (16 clients)" + ("; median of the rounds" if len(write_ratios) > 1 else ""), f"{fmt(pg_create['rps'])} tx/s", f"avg {fmt(pg_create['avg'], 2)}", "–", "–", "1.00", "limit"))
rows.append(("pgbench, the uncached read's query (64 clients)", f"{fmt(pg_read['rps'])} tx/s", f"avg {fmt(pg_read['avg'], 2)}", "–", "–", "–", "reference"))
r = ratio(login["rps"], login_limit)
rows.append((f"Login storm (8 conns); limit = {cores} cores ÷ {hash_ms:.1f} ms per hash = {fmt(login_limit)} /s", f"{fmt(login['rps'])} req/s", fmt(login["p50"], 2), fmt(login["p99"], 2), "cores ÷ hash", fmt(r, 2),
             f"≥ 0.90: {verdict(r is not None and r >= 0.9)}"))
r = ratio(login["rps"], parallel_hashes)
rows.append((f"Login storm against what {cores} threads hashing at once reach here ({fmt(parallel_hashes)} hashes/s)", f"{fmt(login['rps'])} req/s", "–", "–", "parallel hashes", fmt(r, 2), "reference: the machine's real limit"))
rows.append(("Cached GETs during the login storm (paced, open loop)", f"{fmt(storm_reads['rps'])} req/s", fmt(storm_reads["p50"], 2), fmt(storm_reads["p99"], 2), "–", "–",
             f"p99 < 20 ms: {verdict((storm_reads['p99'] or 999) < 20)}"))
per_conn = idle.get("bytes_per_conn")
rows.append((f"Idle subscribed WebSockets on one ws-node ({fmt(idle.get('connections'))} open, {idle.get('failed', '–')} failed)",
             f"{fmt(idle.get('open_per_sec'))} conn/s", "–", "–", "–", f"{fmt(per_conn)} B/conn",
             f"< 8 KiB/conn: {verdict(per_conn is not None and per_conn < 8192)}; ≥ 5,000 conn/s: {verdict((idle.get('open_per_sec') or 0) >= 5000)}; 50,000 conns: {verdict((idle.get('connections') or 0) >= 50000)}"))
rows.append((f"Fan-out: {fmt(fanout.get('connections'))} subscribers, {fanout.get('users', '–')} users, {fmt(fanout.get('writes_per_sec'))} writes/s",
             f"{fmt(fanout.get('received'))} / {fmt(fanout.get('expected'))} events", fmt(fanout.get("p50_ms")), fmt(fanout.get("p99_ms")), "–", f"max {fmt(fanout.get('max_ms'))} ms",
             f"all delivered and p99 < 10 ms: {verdict(fanout.get('received') == fanout.get('expected') and fanout.get('expected') and (fanout.get('p99_ms') or 99) < 10)}"))
rows.append((f"Raw loopback TCP: one 400-byte write to each of {fmt(tcp_floor.get('connections'))} sockets, one task — the floor",
             "–", "–", "–", "–", f"last after {fmt(tcp_floor.get('last_arrival_ms'), 1)} ms", "limit"))
r = ratio(tcp_floor.get("last_arrival_ms"), broadcast.get("max_ms"))
rows.append((f"One user holding {fmt(broadcast.get('connections'))} connections, {fmt(broadcast.get('writes'))} events "
             f"(ws-node {fmt(broadcast.get('node_cpu_us_per_delivery'), 1)} µs CPU per delivery)",
             f"{fmt(broadcast.get('received'))} / {fmt(broadcast.get('expected'))} events", fmt(broadcast.get("p50_ms")), fmt(broadcast.get("p99_ms")), "TCP floor", f"max {fmt(broadcast.get('max_ms'))} ms; floor/max {fmt(r, 2)}",
             f"all within 50 ms: {verdict(broadcast.get('received') == broadcast.get('expected') and broadcast.get('expected') and (broadcast.get('max_ms') or 999) <= 50)}"))

# permessage-deflate, with and without, in the same run: events of tasks
# with a ~420-character description, the same load each time.
per_conn_deflate = idle_deflate.get("bytes_per_conn")
r = ratio(per_conn_deflate, per_conn)
rows.append((f"Idle subscribed WebSockets **with permessage-deflate** (fresh ws-node; {fmt(idle_deflate.get('connections'))} open, {idle_deflate.get('failed', '–')} failed)",
             f"{fmt(idle_deflate.get('open_per_sec'))} conn/s", "–", "–", "without", f"{fmt(per_conn_deflate)} B/conn; ×{fmt(r, 2)}",
             f"< 6 KiB/conn: {verdict(per_conn_deflate is not None and per_conn_deflate < 6144)}"))


def compression_rows(what, plain, deflated, target):
    for label, data in [("without compression", plain), ("**with permessage-deflate**", deflated)]:
        ok = data.get("received") == data.get("expected") and data.get("expected")
        rows.append((f"{what}, {label}: {fmt(data.get('wire_bytes_per_event'))} B on the wire per event, "
                     f"ws-node {fmt(data.get('node_cpu_us_per_delivery'), 1)} µs CPU per delivery",
                     f"{fmt(data.get('received'))} / {fmt(data.get('expected'))} events", fmt(data.get("p50_ms")), fmt(data.get("p99_ms")),
                     "–" if data is plain else "without", f"max {fmt(data.get('max_ms'))} ms" if data is plain else
                     f"bytes ×{fmt(ratio(data.get('wire_bytes_per_event'), plain.get('wire_bytes_per_event')), 2)}, "
                     f"CPU ×{fmt(ratio(data.get('node_cpu_us_per_delivery'), plain.get('node_cpu_us_per_delivery')), 2)}, max {fmt(data.get('max_ms'))} ms",
                     target(data, ok)))


compression_rows(f"Fan-out, described tasks: {fmt(fanout_plain.get('connections'))} subscribers, {fanout_plain.get('users', '–')} users, {fmt(fanout_plain.get('writes_per_sec'))} writes/s",
                 fanout_plain, fanout_deflate,
                 lambda d, ok: f"all delivered and p99 < 10 ms: {verdict(ok and (d.get('p99_ms') or 99) < 10)}")
compression_rows(f"One user holding {fmt(broadcast_plain.get('connections'))} connections, {fmt(broadcast_plain.get('writes'))} described events",
                 broadcast_plain, broadcast_deflate,
                 lambda d, ok: f"all delivered: {verdict(ok)}; max vs TCP floor {fmt(ratio(tcp_floor.get('last_arrival_ms'), d.get('max_ms')), 2)}")

def best_step(data):
    return next((step for step in data.get("steps", []) if step.get("rate") == data.get("best_rate")), {})

def tried(data):
    return ", ".join(f"{s['rate']}{'' if s.get('passed') else ' ✗'}" for s in data.get("steps", [])) or "–"

capacity, write_capacity = result("ws_capacity"), result("write_capacity")
best = best_step(capacity)
r = ratio(capacity.get("best_writes_per_sec"), create["rps"])
rows.append((f"Capacity: {fmt(capacity.get('connections'))} sockets of {fmt(capacity.get('users'))} users; the most writes/s with every event delivered and p99 < 10 ms (steps tried: {tried(capacity)})",
             f"{fmt(capacity.get('best_writes_per_sec'))} writes/s", fmt(best.get("p50_ms")), fmt(best.get("p99_ms")), "`POST /api/tasks` alone", fmt(r, 2),
             f"≥ 0.80: {verdict(r is not None and r >= 0.8)}"))
if write_capacity:
    # The same writer and steps with nobody subscribed: what the fan-out
    # costs the writer, measured the same way (not the target).
    w_best = best_step(write_capacity)
    w = ratio(capacity.get("best_writes_per_sec"), write_capacity.get("best_writes_per_sec"))
    rows.append((f"The same writer and steps against the write path alone (nobody subscribed): the most writes/s with every write answered and its p99 < 10 ms (steps tried: {tried(write_capacity)})",
                 f"{fmt(write_capacity.get('best_writes_per_sec'))} writes/s", fmt(w_best.get("p50_ms")), fmt(w_best.get("p99_ms")),
                 "capacity with fan-out (row above) against this", fmt(w, 2), "diagnostic: what the fan-out costs the writer"))

# Events through Redis alone (issue 12): one server against a Redis Cluster
# on the same cores. The cluster's primaries also feed their replicas.
redis_single = result("redis_events_single")
for name, what in [("redis_events_single", "one Redis, no replica"),
                   ("redis_events_cluster", "a Redis Cluster, 3 primaries + 3 replicas"),
                   ("redis_events_cluster_wait", "a Redis Cluster, 3 primaries + 3 replicas, each event `WAIT`ing for its replica (the api-node's default on a cluster)")]:
    data = result(name)
    single = name == "redis_events_single"
    rows.append((f"Events through {what}: published as the api-node does, received by the ws-node's broker ({fmt(data.get('users'))} users, "
                 f"{fmt(data.get('inflight'))} pipelines in flight); Redis {fmt(data.get('redis_cpu_us_per_event'), 1)} µs CPU per event",
                 f"{fmt(data.get('received_per_sec'))} events/s", "–", "–", "–" if single else "one Redis",
                 f"{fmt(data.get('events_per_redis_core'))} events/s per saturated Redis core" if single else
                 f"×{fmt(ratio(data.get('received_per_sec'), redis_single.get('received_per_sec')), 2)}; {fmt(data.get('events_per_redis_core'))} events/s per saturated Redis core",
                 f"every event received once: {verdict(data.get('lost') == 0 and data.get('failed') == 0 and data.get('published'))}"))

# The chart: p50 and p99 of every scenario that has both.
labels, p50s, p99s = [], [], []
for label, data in [("floor", floor), ("cached GET", cached), ("POST task", create), ("login", login),
                    ("GET during storm", storm_reads)]:
    if data.get("p50") and data.get("p99"):
        labels.append(label), p50s.append(data["p50"]), p99s.append(data["p99"])
for label, data in [("WS fan-out", fanout), ("WS broadcast", broadcast)]:
    if data.get("p99_ms") is not None:
        labels.append(label), p50s.append(max(data.get("p50_ms") or 0, 0.1)), p99s.append(max(data["p99_ms"], 0.1))
fig, ax = plt.subplots(figsize=(9, 4.5))
y = range(len(labels))
ax.barh([i + 0.2 for i in y], p50s, height=0.4, label="p50")
ax.barh([i - 0.2 for i in y], p99s, height=0.4, label="p99")
ax.set_yticks(list(y), labels)
ax.set_xscale("log")
ax.set_xlabel("latency (ms, log scale)")
ax.set_title("Latency percentiles, one run on this machine")
ax.legend()
fig.tight_layout()
os.makedirs(os.path.join(out_dir, "results"), exist_ok=True)
fig.savefig(os.path.join(out_dir, "results", "latency.png"), dpi=110)

run_path = os.path.join(raw_dir, "run.json")
run = json.load(open(run_path)) if os.path.exists(run_path) else {}
now = run.get("date") or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
mem = next((l.split(":", 1)[1].strip() for l in open("/proc/meminfo") if l.startswith("MemTotal")), "?")
commit = run.get("commit")
if not commit:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=out_dir).stdout.strip()
    except OSError:
        commit = "?"
fd_limit = subprocess.run(["bash", "-c", "ulimit -n"], capture_output=True, text=True).stdout.strip()

lines = [
    "# Benchmark results",
    "",
    f"Generated by `loadtest/bench.sh` on {now}, commit `{commit}`. Machine: {cores} cores ({cpu}), {mem} memory,",
    f"open-file limit {fd_limit} per process. One api-node and one ws-node (release builds), their own PostgreSQL 15 and",
    "Redis, and the load generators (wrk, pgbench, redis-benchmark, loadgen) all on the same machine. Latencies in ms.",
    "Each scenario is a ratio to a limit measured in the same run; raw outputs are in `loadtest/results/raw/`.",
    "",
    "| scenario | throughput | p50 | p99 | limit | ratio | target |",
    "|---|---|---|---|---|---|---|",
]
lines += ["| " + " | ".join(row) + " |" for row in rows]
errors = {name: data for name, data in [("cached GET", cached), ("POST task", create), ("login", login), ("GET during storm", storm_reads)] if data["errors"] or data["socket_errors"]}
if errors:
    lines += ["", "Errors seen by wrk: " + "; ".join(f"{k}: {v['errors']} non-2xx, socket errors {v['socket_errors']}" for k, v in errors.items())]
lines += ["", "![latency percentiles](results/latency.png)", ""]
notes = os.path.join(out_dir, "NOTES.md")
if os.path.exists(notes):
    lines += [open(notes).read().strip(), ""]
open(os.path.join(out_dir, "RESULTS.md"), "w").write("\n".join(lines))
print("\n".join(lines[7:7 + len(rows) + 2]))
