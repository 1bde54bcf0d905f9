#!/usr/bin/env python3
"""Summarize sse-load results into the Markdown table of docs/benchmarks.md.

Used by scripts/bench.sh:
  report.py --brief FILE.json             one line about one run, for the log
  report.py --results DIR --doc FILE ...  median of the runs in DIR, written between the
                                          results markers of FILE (the rest of FILE is kept)

Run files are named s<scenario>-<variant>-<run>.json, where variant is gateway, nchan,
gateway-amqp, gateway-http, gateway-amqp-rate or bare-amqp.
"""

import argparse
import glob
import json
import os
import re
import statistics
import sys

BEGIN = "<!-- results:begin (written by scripts/bench.sh) -->"
END = "<!-- results:end -->"


def load(path):
    with open(path) as f:
        return json.load(f)


def brief(r):
    lat = r.get("latency_ms") or {}
    ev = r["events"]
    cpu = r["cpu_pct"]
    rss = r.get("server_rss") or {}
    return (
        f"conn {r['connections']['made']}/{r['connections']['attempted']} "
        f"recv {ev['received']}/{ev['expected']} miss {ev['missing']} dup {ev['duplicated']} "
        f"p50 {lat.get('p50', '-')} p99 {lat.get('p99', '-')} ms "
        f"deliv/s {r['delivered_per_sec']:.0f} pub/s {r['published_per_sec']:.0f} "
        f"cpu srv {cpu.get('server')}% cli {cpu.get('client')}% wait {cpu.get('server_waiting')}% "
        f"others srv {cpu.get('server_core_others')}% cli {cpu.get('client_core_others')}% "
        f"rss/conn {rss.get('per_connection_bytes', '-')} B"
    )


def disturbed(r, threshold):
    """Exit status 0 (and a note) when other work kept the server's or the tool's core busier
    than threshold percent during the run, 1 otherwise."""
    cpu = r["cpu_pct"]
    # /proc/stat counts in 10 ms ticks: under a second, one tick of anything is several percent.
    if (cpu.get("window_s") or 0) < 1:
        return 1
    others = {k: cpu.get(k) for k in ("server_core_others", "client_core_others")}
    bad = {k: v for k, v in others.items() if v is not None and v > threshold}
    if bad:
        print(", ".join(f"{k.split('_')[0]} core {v:.0f}% busy with other work"
                        for k, v in bad.items()))
        return 0
    return 1


def runs(results, scenario, variant):
    name = re.compile(rf"s{scenario}-{re.escape(variant)}-\d+\.json$")
    files = sorted(f for f in glob.glob(os.path.join(results, f"s{scenario}-*.json"))
                   if name.match(os.path.basename(f)))
    out = []
    for f in files:
        try:
            out.append(load(f))
        except (OSError, ValueError):
            pass
    return out


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def pick(rs, fn):
    out = []
    for r in rs:
        try:
            out.append(fn(r))
        except (KeyError, TypeError):
            out.append(None)
    return out


def med(rs, fn):
    return median(pick(rs, fn))


def worst(rs, fn):
    values = [v for v in pick(rs, fn) if v is not None]
    return max(values) if values else None


def fmt(v, digits=1):
    if v is None:
        return "–"
    if isinstance(v, float) and not v.is_integer():
        return f"{v:,.{digits}f}"
    return f"{int(v):,}"


def ratio(gw, nc, higher_is_better):
    if gw is None or nc is None or gw == 0 or nc == 0:
        return "–"
    r = gw / nc if higher_is_better else nc / gw
    return f"{r:.2f}×"


def loss(rs):
    if not rs:
        return None
    miss = worst(rs, lambda r: r["events"]["missing"])
    dup = worst(rs, lambda r: r["events"]["duplicated"])
    return f"{miss} / {dup}"


def p99(rs, channel=None):
    if channel:
        return med(rs, lambda r: r["latency_by_channel_ms"][channel]["p99"])
    return med(rs, lambda r: r["latency_ms"]["p99"])


def p50(rs):
    return med(rs, lambda r: r["latency_ms"]["p50"])


def row(cells):
    return "| " + " | ".join(cells) + " |"


def latency_rows(n, name, g, c, channel=None, label="p99 latency (ms)"):
    gv, cv = p99(g, channel), p99(c, channel)
    return [
        row([n, name, label, fmt(gv, 2), fmt(cv, 2), ratio(gv, cv, False), "≤ nchan"]),
    ]


def table(results, sizes):
    g = {s: runs(results, s, "gateway") for s in "12345"}
    c = {s: runs(results, s, "nchan") for s in "12345"}
    lines = [
        row(["#", "Scenario", "Metric", "sse-gateway", "nginx+nchan",
             "gateway advantage", "target"]),
        row(["---"] * 7),
    ]
    s = sizes
    lines += latency_rows("1", f"{s['s1']} subscribers, 1 channel, {s['s1e']} events at 100/s",
                          g["1"], c["1"])
    lines.append(row(["1", "", "p50 latency (ms)", fmt(p50(g["1"]), 2), fmt(p50(c["1"]), 2),
                      ratio(p50(g["1"]), p50(c["1"]), False), ""]))
    lines.append(row(["1", "", "missing / repeated (worst run)", loss(g["1"]) or "–",
                      loss(c["1"]) or "–", "", "0 / 0"]))
    lines += latency_rows("2", f"{s['s2']} subscribers, 1 channel, {s['s2e']} events at 5/s",
                          g["2"], c["2"])
    lines.append(row(["2", "", "missing / repeated (worst run)", loss(g["2"]) or "–",
                      loss(c["2"]) or "–", "", "0 / 0"]))
    gv = med(g["3"], lambda r: r["delivered_per_sec"])
    cv = med(c["3"], lambda r: r["delivered_per_sec"])
    lines.append(row(["3", f"{s['s3']} subscribers, 1 channel, {s['s3e']} events, 8 in flight",
                      "delivered events/s", fmt(gv), fmt(cv), ratio(gv, cv, True), "≥ 1.4×"]))
    gp = med(g["3"], lambda r: r["publish_latency_ms"]["p99"])
    cp = med(c["3"], lambda r: r["publish_latency_ms"]["p99"])
    lines.append(row(["3", "", "POST publish p99 (ms)", fmt(gp, 2), fmt(cp, 2),
                      ratio(gp, cp, False), "< 10 ms"]))
    lines.append(row(["3", "", "missing / repeated (worst run)", loss(g["3"]) or "–",
                      loss(c["3"]) or "–", "", "0 / 0"]))
    pb = runs(results, 3, "gateway-publish-bind")
    if pb:
        bv = med(pb, lambda r: r["delivered_per_sec"])
        bp = med(pb, lambda r: r["publish_latency_ms"]["p99"])
        lines.append(row(["3", "same, gateway with `--publish-bind` (publishers on a listener "
                          "and worker of their own)", "delivered events/s", fmt(bv), fmt(cv),
                          ratio(bv, cv, True), "≥ 1.4×"]))
        lines.append(row(["3", "", "POST publish p99 (ms)", fmt(bp, 2), fmt(cp, 2),
                          ratio(bp, cp, False), "< 10 ms"]))
        lines.append(row(["3", "", "p99 delivery latency (ms)", fmt(p99(pb), 2),
                          fmt(p99(c["3"]), 2), ratio(p99(pb), p99(c["3"]), False), ""]))
        lines.append(row(["3", "", "missing / repeated (worst run)", loss(pb) or "–", "", "",
                          "0 / 0"]))
    for ch in ("general", "cats"):
        lines += latency_rows("4", f"cyclone layout: {s['s4']} subscribers on general + 1 of 4, "
                              f"{s['s4e']} events each to general and cats at 10/s"
                              if ch == "general" else "", g["4"], c["4"], ch,
                              f"p99 latency on {ch} (ms)")
    lines.append(row(["4", "", "missing / repeated (worst run)", loss(g["4"]) or "–",
                      loss(c["4"]) or "–", "", "0 / 0"]))
    gm = med(g["5"], lambda r: r["connections"]["made"])
    cm = med(c["5"], lambda r: r["connections"]["made"])
    lines.append(row(["5", f"{s['s5']} idle subscribers", "connected", fmt(gm), fmt(cm), "",
                      f"all {s['s5']}"]))
    gr = med(g["5"], lambda r: r["server_rss"]["per_connection_bytes"] / 1024)
    cr = med(c["5"], lambda r: r["server_rss"]["per_connection_bytes"] / 1024)
    lines.append(row(["5", "", "server RSS per connection (KiB)", fmt(gr, 2), fmt(cr, 2),
                      ratio(gr, cr, False), "≤ 5 KB"]))
    lines += amqp_rows(results, s)
    return lines


def amqp_rows(results, s):
    amqp = runs(results, 6, "gateway-amqp")
    http = runs(results, 6, "gateway-http")
    rate = runs(results, 6, "gateway-amqp-rate")
    bare = runs(results, 6, "bare-amqp")
    note = s.get("s6note", "")
    if not (amqp or http or rate or bare):
        return [row(["6", "AMQP input", "not measured", "–", "n/a", "", note])]
    av = med(amqp, lambda r: r["delivered_per_sec"])
    hv = med(http, lambda r: r["delivered_per_sec"])
    ai = med(amqp, lambda r: r["published_per_sec"])
    hi = med(http, lambda r: r["published_per_sec"])
    bv = med(bare, lambda r: r["delivered_per_sec"])
    name = f"{s['s6']} subscribers, {s['s6e']} events, 8 in flight"
    out = [
        row(["6", name + ", AMQP input", "delivered events/s", fmt(av), "n/a",
             ratio(av, hv, True) + " of HTTP input" if av and hv else "–",
             "within 10% of HTTP input, or broker-bound"]),
        row(["6", name + ", HTTP input (same run)", "delivered events/s", fmt(hv), "n/a", "",
             ""]),
        row(["6", "", "events into the gateway per s, AMQP / HTTP", f"{fmt(ai)} / {fmt(hi)}",
             "n/a", "", ""]),
        row(["6", "", "missing / repeated (worst run)", loss(amqp) or "–", "n/a", "", "0 / 0"]),
        row(["6", f"{s['s1']} subscribers, {s['s1e']} events at 100/s via AMQP",
             "p50 / p99 latency (ms)", f"{fmt(p50(rate), 2)} / {fmt(p99(rate), 2)}", "n/a", "",
             ""]),
        row(["6", "bare AMQP consumer, same broker and publisher (no gateway)",
             "events/s through the broker", fmt(bv), "n/a", "", "the broker's limit"]),
    ]
    if note:
        out.append(row(["6", "", "note", note, "", "", ""]))
    return out


def cpu_table(results):
    lines = [
        row(["Run", "server CPU %", "client CPU %", "server threads waiting %",
             "server core, other work %", "client core, other work %", "window (s)"]),
        row(["---"] * 7),
    ]
    names = sorted({re.sub(r"-\d+\.json$", "", os.path.basename(f))
                    for f in glob.glob(os.path.join(results, "s*-*.json"))})
    for name in names:
        scenario, variant = name.split("-", 1)
        rs = runs(results, scenario[1:], variant)
        if not rs:
            continue
        cells = [name]
        for key in ("server", "client", "server_waiting", "server_core_others",
                    "client_core_others", "window_s"):
            cells.append(fmt(med(rs, lambda r, k=key: r["cpu_pct"][k]), 1))
        lines.append(row(cells))
    return lines


def write_doc(doc, section):
    text = open(doc).read() if os.path.exists(doc) else "# Benchmarks\n\n"
    block = BEGIN + "\n" + section.rstrip() + "\n" + END
    if BEGIN in text and END in text:
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, text,
                      flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    with open(doc, "w") as f:
        f.write(text)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--brief")
    p.add_argument("--disturbed")
    p.add_argument("--threshold", type=float, default=10.0)
    p.add_argument("--results")
    p.add_argument("--doc")
    p.add_argument("--machine", default="")
    p.add_argument("--date", default="")
    p.add_argument("--runs", default="3")
    p.add_argument("--sizes", default="{}")
    p.add_argument("--notes", default="")
    a = p.parse_args()
    if a.brief:
        print(brief(load(a.brief)))
        return
    if a.disturbed:
        return disturbed(load(a.disturbed), a.threshold)
    sizes = json.loads(a.sizes)
    section = "\n".join([
        f"Measured {a.date} on {a.machine}. Median of {a.runs} run(s) per figure; "
        "\"missing / repeated\" is the worst run. Server pinned to one core, load tool to the "
        "other (`taskset`). Raw results: one JSON per run in `" + a.results + "`.",
        "",
        *( [a.notes, ""] if a.notes else [] ),
        *table(a.results, sizes),
        "",
        "CPU over each run's measured window (median), in percent of one core. \"Threads "
        "waiting\" is time the server's threads were runnable but not running (another process, "
        "or its own other thread, had the core); \"other work\" is how busy the pinned core was "
        "with anything but the process (runs above 10% are repeated, up to twice):",
        "",
        *cpu_table(a.results),
    ])
    write_doc(a.doc, section)
    print(section)


if __name__ == "__main__":
    sys.exit(main())
