"""Summarizes a bench/run.sh output directory: one row per case and repetition, medians,
the server-side referee checks and the issue's targets. Usage: summarize.py OUT_DIR B_USERS"""

import glob
import json
import os
import re
import statistics
import sys

out, b_users = sys.argv[1], int(sys.argv[2])
EXPECTED_B = 3 * b_users  # 3 requests per iteration, one iteration per second per user


def read(path):
    with open(path) as f:
        return f.read()


def time_v(path):
    t = read(path)

    def num(label):
        m = re.search(re.escape(label) + r":\s*([\d.]+)", t)
        return float(m.group(1)) if m else float("nan")

    el = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", t).group(1)
    secs = 0.0
    for part in el.split(":"):
        secs = secs * 60 + float(part)
    return {
        "cpu_s": num("User time (seconds)") + num("System time (seconds)"),
        "user_s": num("User time (seconds)"),
        "sys_s": num("System time (seconds)"),
        "wall_s": secs,
        "rss_mb": num("Maximum resident set size (kbytes)") / 1024,
    }


def server_rate(samples, start, end):
    """Requests/s the stub counted between two times (minus the sampler's own requests)."""
    inside = [(t, n) for t, n in samples if start <= t <= end]
    if len(inside) < 2:
        return float("nan")
    (ta, na), (tb, nb) = inside[0], inside[-1]
    return (nb - na - (len(inside) - 1)) / (tb - ta)


rows = []
for meta_path in sorted(glob.glob(os.path.join(out, "*.meta"))):
    meta = json.loads(read(meta_path))
    base = meta_path[: -len(".meta")]
    case, rep = meta["case"], meta["rep"]
    tv = time_v(base + ".time")
    tick = meta["clk_tck"]
    row = {"case": case, "rep": rep, "rc": meta["rc"], **tv}
    row["stub_requests"] = meta["stub_requests"]
    row["stub_errors"] = meta["stub_errors"]
    row["nginx_pct"] = 100 * meta["nginx_ticks"] / tick / tv["wall_s"]
    # CPU time on the two CPUs that was neither the tool's nor nginx's (a shared machine).
    row["other_cpu1_pct"] = max(0.0, 100 * (meta["cpu1_proc_ticks"] / tick - tv["cpu_s"]) / tv["wall_s"])
    row["other_cpu0_pct"] = max(0.0, 100 * (meta["cpu0_proc_ticks"] - meta["nginx_ticks"]) / tick / tv["wall_s"])
    row["irq_cpu0_pct"] = 100 * meta["cpu0_irq_ticks"] / tick / tv["wall_s"]
    row["irq_cpu1_pct"] = 100 * meta["cpu1_irq_ticks"] / tick / tv["wall_s"]
    row["cpu_pct"] = 100 * tv["cpu_s"] / tv["wall_s"]
    samples = []
    for line in read(base + ".server").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            samples.append((float(parts[0]), int(parts[1])))
    if "sampler_reads" not in meta:  # older runs: the sampler's reads were not subtracted
        row["stub_requests"] -= len(samples)
    if case in ("a", "b"):
        res = json.loads(read(base + ".json"))
        dur = res["run"]["duration_secs"]
        total = res["total"]
        row["requests"] = total["requests"]
        row["failures"] = total["failures"]
        row["rps"] = total["requests"] / dur
        row["its"] = res["users"]["iterations"] / dur
        row["p50"] = total["latency_ms"]["p50"]
        row["p99"] = total["latency_ms"]["p99"]
        row["warnings"] = sum(
            1 for l in read(base + ".stderr").splitlines() if "warning" in l.lower() or "error" in l.lower()
        )
        row["results_kb"] = os.path.getsize(base + ".json") / 1024
        if case == "b":
            tl = res["timeline"]
            full = next((s["t"] for s in tl if s["users"] >= b_users), None)
            last = int(dur) - 1  # the last whole second
            if full is not None and last > full + 1:
                steady = [s["requests"] for s in tl if full + 1 <= s["t"] < last]
                row["spawn_s"] = full + 1
                row["steady"] = sum(steady) / len(steady)
                row["steady_server"] = server_rate(samples, meta["t0"] + full + 1, meta["t0"] + last)
            else:
                row["spawn_s"] = row["steady"] = row["steady_server"] = float("nan")
            iter_ms = sum(s["latency_ms"]["mean"] for s in res["stats"] if s["phase"] == "tasks")
            row["iter_ms"] = iter_ms
            row["expected_lat"] = EXPECTED_B / (1 + iter_ms / 1000)
    else:
        t = read(base + ".stdout")
        row["requests"] = int(re.search(r"(\d+) requests in", t).group(1))
        row["rps"] = float(re.search(r"Requests/sec:\s*([\d.]+)", t).group(1))
        row["failures"] = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", t)) else 0
        row["its"] = float("nan")
        row["p50"] = float("nan")  # wrk prints the mean without --latency
        row["p99"] = float("nan")
    row["rps_core"] = row["requests"] / row["cpu_s"] if row["cpu_s"] > 0 else float("nan")
    rows.append(row)

if not rows:
    sys.exit("no results in " + out)


def f(v, spec):
    if isinstance(v, float) and spec.endswith("d"):  # median of an even number of counts
        spec = spec[:-1] + ".1f"
    return "-" if v is None or (isinstance(v, float) and v != v) else format(v, spec)


cols = [
    ("case", "case", "s"),
    ("rep", "rep", "s"),
    ("req/s", "rps", ",.0f"),
    ("req/s/core", "rps_core", ",.0f"),
    ("iter/s", "its", ",.0f"),
    ("CPU%", "cpu_pct", ".0f"),
    ("RSS MB", "rss_mb", ".1f"),
    ("requests", "requests", ",d"),
    ("stub", "stub_requests", ",d"),
    ("non2xx", "stub_errors", "d"),
    ("fail", "failures", "d"),
    ("p50 ms", "p50", ".2f"),
    ("p99 ms", "p99", ".1f"),
    ("nginx%", "nginx_pct", ".0f"),
    ("other%cpu0", "other_cpu0_pct", ".0f"),
    ("other%cpu1", "other_cpu1_pct", ".0f"),
    ("irq%cpu0", "irq_cpu0_pct", ".0f"),
    ("irq%cpu1", "irq_cpu1_pct", ".0f"),
]


def line(r):
    return "  ".join(f(r.get(k), s).rjust(max(len(h), 7)) for h, k, s in cols)


print("  ".join(h.rjust(max(len(h), 7)) for h, _, _ in cols))
medians = {}
for case in ("a", "b", "c"):
    rs = [r for r in rows if r["case"] == case]
    if not rs:
        continue
    for r in rs:
        print(line({**r, "rep": str(r["rep"])}))
    med = {"case": case, "rep": "median"}
    for k in rs[0]:
        vals = [r[k] for r in rs if isinstance(r.get(k), (int, float))]
        if vals and k not in ("rep",):
            m = statistics.median(vals)
            med[k] = int(m) if all(isinstance(v, int) for v in vals) and m == int(m) else m
    medians[case] = med
    print(line(med))
print()
print("req/s: the tool's count / its run time (for acaload, the results' total / run duration);")
print("req/s/core: requests / CPU seconds of the tool's process (user + sys, /usr/bin/time -v);")
print("stub: requests the stub's /__bench_status counted; non2xx: lines in the stub's errors.log;")
print("nginx%: the stub worker's CPU (CPU 0); other%: CPU used by other processes on that CPU")
print("(a shared machine); irq%: interrupt/softirq time on that CPU (loopback TCP work of both ends).")

a, b, c = medians.get("a"), medians.get("b"), medians.get("c")
print()
if b:
    print(
        "b (median): users all started after {}s; steady-state {} req/s by acaload's timeline, {} req/s "
        "by the stub's counter; chain time {} ms, so the latency-bound expectation is {} req/s".format(
            f(b.get("spawn_s"), ".0f"), f(b.get("steady"), ",.0f"), f(b.get("steady_server"), ",.0f"),
            f(b.get("iter_ms"), ".1f"), f(b.get("expected_lat"), ",.0f"),
        )
    )
    print(
        "b (median): results file {} KB, {} warning/error lines on stderr".format(
            f(b.get("results_kb"), ".0f"), f(b.get("warnings"), "d")
        )
    )
bad = [r for r in rows if r["stub_errors"] or r["failures"] or r["rc"]]
mismatch = [
    r for r in rows if r["case"] in ("a", "b") and abs(r["stub_requests"] - r["requests"]) > max(10, r["requests"] * 0.001)
]
print("referee: {} run(s) with non-2xx, failures or a non-zero exit; {} with a count mismatch vs the stub".format(len(bad), len(mismatch)))
if a and c:
    ratio = a["rps"] / c["rps"]
    print(
        "TARGET a >= 50% of c's plain-GET rate: {:.0%} ({:,.0f} vs {:,.0f} req/s) -> {}".format(
            ratio, a["rps"], c["rps"], "met" if ratio >= 0.5 else "NOT met"
        )
    )
    print(
        "       per core: acaload {:,.0f} req/CPU-s, wrk {:,.0f} req/CPU-s ({:.0%})".format(
            a["rps_core"], c["rps_core"], a["rps_core"] / c["rps_core"]
        )
    )
if b:
    share = b["steady"] / EXPECTED_B if b.get("steady") == b.get("steady") else float("nan")
    ok = share >= 0.99 and b["rss_mb"] < 200
    print(
        "TARGET b >= 99% of {:,} req/s in < 200 MB: {} of it at {:.0f} MB peak RSS -> {}".format(
            EXPECTED_B, f(share, ".1%"), b["rss_mb"], "met" if ok else "NOT met"
        )
    )
