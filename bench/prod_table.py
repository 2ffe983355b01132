#!/usr/bin/env python3
"""The table of bench/prod-compare.sh: one row per case from OUT_DIR/CASE.json, then the load
levels of each case (users, delivery p95, lost, failed requests, each instance's CPU)."""
import json
import sys


def stat(r, name):
    for s in r["stats"]:
        if s["name"] == name:
            return s
    return None


def ms(s, p):
    return "-" if s is None else f"{s['latency_ms'][p]:.0f}"


def main(out, cases):
    print("| case | onboarded | onboarding p50/p95 ms | delivered | delivery p50/p95/p99 ms "
          "| lost | held | failed requests | mediator CPU % (peak level) | RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    levels = {}
    for c in cases:
        try:
            r = json.load(open(f"{out}/{c}.json"))
        except (OSError, ValueError) as e:
            print(f"| {c} | no results: {e} |")
            continue
        onb = stat(r, "onboarding (connect to granted)")
        d = stat(r, "message delivered through mediator")
        held = sum(s["count"] for s in r["stats"] if "(held" in s["name"])
        cpu, rss = {}, {}
        for lv in r.get("levels", []):
            for a in lv.get("agents", []):
                if a.get("cpu_pct") is not None:
                    cpu[a["name"]] = max(cpu.get(a["name"], 0), a["cpu_pct"])
                if a.get("rss_mb") is not None:
                    rss[a["name"]] = max(rss.get(a["name"], 0), a["rss_mb"])
        onboarded = (onb["count"] - onb["failures"]) if onb else 0
        delivered = (d["count"] - d["failures"]) if d else 0
        lost = d["failures"] if d else 0
        failed = r["total"]["failures"]
        cpus = ", ".join(f"{k} {v:.0f}" for k, v in sorted(cpu.items())) or "-"
        rsss = ", ".join(f"{v:.0f}" for _, v in sorted(rss.items())) or "-"
        print(f"| {c} | {onboarded} | {ms(onb, 'p50')}/{ms(onb, 'p95')} | {delivered} "
              f"| {ms(d, 'p50')}/{ms(d, 'p95')}/{ms(d, 'p99')} | {lost} | {held} | {failed} "
              f"| {cpus} | {rsss} |")
        levels[c] = r.get("levels", [])
    for c, lvs in levels.items():
        print(f"\n{c}: users, delivery p95 ms, lost, failed requests, CPU % by instance")
        for lv in lvs:
            ev = lv.get("event_latency_ms") or {}
            cpu = ", ".join(f"{a['name']} {a['cpu_pct']:.0f}" for a in lv.get("agents", [])
                            if a.get("cpu_pct") is not None)
            print(f"  {lv['users']:>4}  {ev.get('p95', 0):>8.0f}  {lv.get('event_failures', 0):>4}"
                  f"  {lv['failures']:>4}  {cpu}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
