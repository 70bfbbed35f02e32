#!/usr/bin/env python3
"""check_report_page.py REPORT.json DOM.html MODE [MEMORY.csv]

Reads the DOM that headless Chromium dumped for a `pipeprune report` page and fails unless the
page shows the report's numbers: one bar per linear per layer with the JSON's sparsity, the
layer's target marker where the JSON has one, the profile table, one time segment per part per
layer, the perplexities, a settings row per setting, and the memory chart for MODE:
  log      a line per rank with one point per CSV row (seconds and RSS equal to the CSV), and the
           rank's estimate and budget as reference lines
  peaks    no log: a peak and an estimate bar per rank, the budget as a marker
  missing  the log is named but absent: the one-line note, then the peak bars
Values are compared exactly (the page writes the shortest round-trip text of each double), and
bar heights must be proportional to their values, so a wrong scale fails too. stdlib only.
"""
import csv
import json
import sys
from html.parser import HTMLParser

failures = []


def check(condition, message):
    if not condition:
        failures.append(message)


class Element:
    def __init__(self, tag, attrs, ancestors):
        self.tag = tag
        self.attrs = dict(attrs)
        self.classes = set((self.attrs.get("class") or "").split())
        # The classes of the enclosing <svg> (which chart this shape belongs to).
        self.chart = set()
        for a in ancestors:
            if a.tag == "svg":
                self.chart = a.classes
        self.text = ""


class Dom(HTMLParser):
    VOID = {"meta", "br", "img", "input", "link", "hr"}

    def __init__(self):
        super().__init__()
        self.elements = []
        self.stack = []

    def handle_starttag(self, tag, attrs):
        element = Element(tag, attrs, self.stack)
        self.elements.append(element)
        if tag not in self.VOID:
            self.stack.append(element)

    def handle_startendtag(self, tag, attrs):
        self.elements.append(Element(tag, attrs, self.stack))

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                break

    def handle_data(self, data):
        for element in self.stack:
            element.text += data

    def find(self, tag=None, cls=None, chart=None, **data):
        out = []
        for e in self.elements:
            if tag and e.tag != tag:
                continue
            if cls and cls not in e.classes:
                continue
            if chart and chart not in e.chart:
                continue
            if any(e.attrs.get("data-" + k.replace("_", "-")) != v for k, v in data.items()):
                continue
            out.append(e)
        return out


def value(element, name="data-value"):
    return float(element.attrs[name])


def check_proportional(elements, values, what):
    """Heights (pixels) must be value * k for one k, within the 0.01 px rounding of the page."""
    pairs = [(float(e.attrs["height"]), v) for e, v in zip(elements, values) if v > 0]
    if not pairs:
        return
    k = max(pairs, key=lambda p: p[1])
    k = k[0] / k[1]
    for height, v in pairs:
        check(abs(height - v * k) <= 0.02, f"{what}: height {height} is not proportional to {v} (scale {k})")


def check_sparsity(dom, report):
    bars = dom.find("rect", "bar", "sparsity-chart")
    expected = sum(len(layer["linears"]) for layer in report["layers"])
    check(len(bars) == expected, f"sparsity chart: {len(bars)} bars, expected {expected} (one per linear per layer)")
    shown, values = [], []
    for layer in report["layers"]:
        n = str(layer["layer"])
        for name, linear in layer["linears"].items():
            found = dom.find("rect", "bar", "sparsity-chart", layer=n, linear=name)
            check(len(found) == 1, f"sparsity: layer {n} {name}: {len(found)} bars")
            if found:
                check(value(found[0]) == linear["sparsity"],
                      f"sparsity: layer {n} {name} shows {found[0].attrs['data-value']}, JSON {linear['sparsity']}")
                shown.append(found[0])
                values.append(linear["sparsity"])
        markers = dom.find("line", "target-sparsity", "sparsity-chart", layer=n)
        if "target_sparsity" in layer:
            check(len(markers) == 1 and value(markers[0]) == layer["target_sparsity"],
                  f"sparsity: layer {n} target marker missing or wrong")
        else:
            check(not markers, f"sparsity: layer {n} has a target marker but no target in the JSON")
    check_proportional(shown, values, "sparsity bars")
    profile = report.get("sparsity_profile")
    if isinstance(profile, dict) and isinstance(profile.get("layer_sparsity"), list):
        outliers = profile.get("outlier_percent")
        for i, target in enumerate(profile["layer_sparsity"]):
            cells = [c for c in dom.find("td", layer=str(i)) if "data-target" in c.attrs]
            check(len(cells) == 1 and float(cells[0].attrs["data-target"]) == target, f"profile: layer {i} target")
            cells = [c for c in dom.find("td", layer=str(i)) if "data-outlier" in c.attrs]
            if isinstance(outliers, list) and outliers[i] is not None:
                check(len(cells) == 1 and float(cells[0].attrs["data-outlier"]) == outliers[i],
                      f"profile: layer {i} outlier percent")
            else:
                check(not cells, f"profile: layer {i} shows an outlier percent the JSON does not have")
    else:
        check(not [e for e in dom.elements if "data-target" in e.attrs], "profile table without a profile")


def check_time(dom, report):
    parts = ["seconds_stats", "seconds_prune", "seconds_output"]
    if any(layer.get("seconds_reduce", 0) > 0 for layer in report["layers"]):
        parts.append("seconds_reduce")
    segments = dom.find("rect", "segment", "time-chart")
    check(len(segments) == len(parts) * len(report["layers"]), f"time chart: {len(segments)} segments")
    shown, values = [], []
    for layer in report["layers"]:
        for part in parts:
            found = dom.find("rect", "segment", "time-chart", layer=str(layer["layer"]), part=part)
            check(len(found) == 1 and value(found[0]) == layer[part], f"time: layer {layer['layer']} {part}")
            if found:
                shown.append(found[0])
                values.append(layer[part])
    check_proportional(shown, values, "time segments")


def host_figures(rank):
    gpu = "estimated_host_peak_bytes" in rank
    estimate = rank["estimated_host_peak_bytes" if gpu else "estimated_peak_bytes"]
    budget = rank.get("host_budget_bytes" if gpu else "budget_bytes")
    return estimate, (budget if budget else None)


def check_memory_log(dom, report, csv_path):
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    ranks = sorted({int(r["rank"]) for r in rows})
    check(ranks == sorted(r["rank"] for r in report["ranks"]), f"memory log ranks {ranks} differ from the report's")
    lines = dom.find("polyline", "line", "memory-chart")
    check(len(lines) == len(ranks), f"memory chart: {len(lines)} lines, expected one per rank ({len(ranks)})")
    for rank in ranks:
        mine = [r for r in rows if int(r["rank"]) == rank]
        points = dom.find("circle", "point", "memory-chart", rank=str(rank))
        check(len(points) == len(mine), f"memory: rank {rank} has {len(points)} points, the CSV {len(mine)} rows")
        for point, row in zip(points, mine):
            check(point.attrs["data-checkpoint"] == row["checkpoint"]
                  and value(point, "data-seconds") == float(row["seconds"])
                  and value(point, "data-bytes") == float(row["host_rss_bytes"]),
                  f"memory: rank {rank} point {row['checkpoint']!r} differs from the CSV")
    # All points on one linear scale (cy = a - k * bytes, k > 0): the chart is drawn to its axis.
    points = dom.find("circle", "point", "memory-chart")
    pairs = sorted((value(p, "data-bytes"), float(p.attrs["cy"])) for p in points)
    if len(pairs) >= 2 and pairs[-1][0] > pairs[0][0]:
        (b0, y0), (b1, y1) = pairs[0], pairs[-1]
        k = (y0 - y1) / (b1 - b0)
        check(k > 0, "memory chart: more RSS is drawn lower")
        for b, y in pairs:
            check(abs(y - (y0 - k * (b - b0))) <= 0.05, f"memory point at {b} bytes is off the line's scale")
    for rank in report["ranks"]:
        estimate, budget = host_figures(rank)
        refs = [e for e in dom.find(cls="reference", chart="memory-chart", rank=str(rank["rank"]))]
        est = [e for e in refs if e.attrs.get("data-kind") == "estimate"]
        check(len(est) == 1 and value(est[0]) == estimate, f"memory: rank {rank['rank']} estimate line")
        bud = [e for e in refs if e.attrs.get("data-kind") == "budget"]
        if budget:
            check(len(bud) == 1 and value(bud[0]) == budget, f"memory: rank {rank['rank']} budget line")
        else:
            check(not bud, f"memory: rank {rank['rank']} has a budget line but no budget")


def check_memory_peaks(dom, report):
    for rank in report["ranks"]:
        estimate, budget = host_figures(rank)
        r = str(rank["rank"])
        peak = dom.find("rect", "bar", "memory-peaks-chart", rank=r, kind="peak_rss")
        check(len(peak) == 1 and value(peak[0]) == rank["peak_rss_bytes"], f"memory peaks: rank {r} peak bar")
        est = dom.find("rect", "bar", "memory-peaks-chart", rank=r, kind="estimate")
        check(len(est) == 1 and value(est[0]) == estimate, f"memory peaks: rank {r} estimate bar")
        bud = dom.find(cls="budget", chart="memory-peaks-chart", rank=r)
        check(len(bud) == (1 if budget else 0) and (not budget or value(bud[0]) == budget), f"memory peaks: rank {r} budget")
    check(not dom.find("polyline", "line", "memory-chart"), "memory: a line chart without a log")


def check_rest(dom, report):
    for kind in ("dense", "pruned"):
        x = report["perplexity"][kind]
        cells = dom.find("td", perplexity=kind)
        if x is None:
            check(not cells, f"perplexity {kind}: shown but null in the JSON")
        else:
            check(len(cells) == 1 and value(cells[0]) == x, f"perplexity {kind}: page differs from {x}")
    if all(report["perplexity"][k] is not None for k in ("dense", "pruned")):
        check(len(dom.find("rect", "bar", "perplexity-chart")) == 2, "perplexity: two bars expected")
    for key in ("seconds_total", "overall_sparsity"):
        found = dom.find(summary=key)
        check(len(found) == 1 and value(found[0]) == report[key], f"summary {key}")
    sections = {"layers", "ranks", "perplexity", "overall_sparsity", "seconds_total", "memory_log"}
    for key, v in report.items():
        if key in sections or isinstance(v, (dict, list)):
            continue
        rows = dom.find("tr", setting=key)
        check(len(rows) == 1, f"settings: no row for {key}")
    title = [e for e in dom.elements if e.tag == "h1"]
    check(title and report["method"] in title[0].text, "the title does not name the method")


def main():
    report_path, dom_path, mode = sys.argv[1:4]
    with open(report_path) as f:
        report = json.load(f)
    dom = Dom()
    with open(dom_path, encoding="utf-8") as f:
        dom.feed(f.read())
    check(dom.find("svg", "sparsity-chart"), "no sparsity chart")
    check_sparsity(dom, report)
    check_time(dom, report)
    if mode == "log":
        check_memory_log(dom, report, sys.argv[4])
    else:
        check_memory_peaks(dom, report)
        notes = dom.find("p", "missing-log")
        check(len(notes) == (1 if mode == "missing" else 0), f"{mode}: {len(notes)} missing-log notes")
    check_rest(dom, report)
    for message in failures:
        print("FAIL:", message)
    if failures:
        sys.exit(1)
    n_shapes = len(dom.find("rect")) + len(dom.find("circle")) + len(dom.find("polyline"))
    print(f"ok: {dom_path} ({mode}): {n_shapes} shapes match {report_path}")


if __name__ == "__main__":
    main()
