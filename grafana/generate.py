#!/usr/bin/env python3
"""Generates the Grafana dashboards in grafana/dashboards/{default,withfields}/.

One description of every panel, rendered for both InfluxDB schemas heapster writes
(REFERENCE.md section 3), so the two sets never drift apart:
  default     measurement "cpu/usage_rate", field "value"
  withfields  measurement "cpu",            field "usage_rate"  (--sink=influxdb:...?withfields=true)

    python3 grafana/generate.py           # rewrite the JSON files
    python3 grafana/generate.py --check   # exit 1 when a file is out of date (tests/dashboards.rs)

Standard library only. Queries are raw InfluxQL so tests/dashboards.rs can parse and run them.
"""

import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent
DATASOURCE = {"type": "influxdb", "uid": "monitoring-influxdb"}
INTERVAL = "$__interval"

# Grafana units.
MILLICORES = "suffix:m"  # cpu/usage_rate, cpu/request, cpu/limit and node cpu are millicores
BYTES = "bytes"
BYTES_RATE = "binBps"
FRACTION = "percentunit"  # */node_utilization, */node_reservation are 0..1
PERCENT = "percent"  # */pressure_some, */pressure_full are 0..100
PER_SEC = "short"
COUNT = "short"
MS = "ms"


class Schema:
    def __init__(self, name, with_fields):
        self.name = name
        self.with_fields = with_fields

    def source(self, metric):
        """(measurement, field) for a Heapster metric name."""
        if self.with_fields and "/" in metric:
            m, f = metric.split("/", 1)
            return m, f
        return metric, "value"

    def events(self):
        return ("events", "message") if self.with_fields else ("log/events", "value")


def cond(*parts):
    return " AND ".join(p for p in parts if p)


def re_var(tag, var):
    return f'"{tag}" =~ /^${var}$/'


CLUSTER = re_var("cluster_name", "cluster_name")


def typ(t):
    return f"\"type\" = '{t}'"


def series(schema, metric, where, by=(), agg="mean"):
    """One series per `by` tags, aggregated per time bucket."""
    m, f = schema.source(metric)
    group = ", ".join([f"time({INTERVAL})"] + [f'"{t}"' for t in by])
    return (
        f'SELECT {agg}("{f}") FROM "{m}" WHERE {cond(where, "$timeFilter")} '
        f"GROUP BY {group} fill(null)"
    )


def summed(schema, metric, where, per, by=()):
    """Sum over `per` of each one's mean in the bucket: a cluster total that does not depend on
    how many points fall into a bucket (Heapster's dashboards summed raw points, so totals
    grew with the interval)."""
    m, f = schema.source(metric)
    inner_by = ", ".join([f"time({INTERVAL})"] + [f'"{t}"' for t in list(per) + list(by)])
    outer_by = ", ".join([f"time({INTERVAL})"] + [f'"{t}"' for t in by])
    return (
        f'SELECT sum("value") FROM (SELECT mean("{f}") AS "value" FROM "{m}" '
        f'WHERE {cond(where, "$timeFilter")} GROUP BY {inner_by}) '
        f"WHERE $timeFilter GROUP BY {outer_by} fill(null)"
    )


def target(query, alias, ref, fmt="time_series"):
    return {
        "datasource": DATASOURCE,
        "refId": ref,
        "rawQuery": True,
        "resultFormat": fmt,
        "query": query,
        "alias": alias,
    }


# Requests, limits, allocatable and capacity are drawn as dashed lines without fill.
THRESHOLD_LINES = {
    "matcher": {"id": "byRegexp", "options": ".*(request|limit|allocatable|capacity).*"},
    "properties": [
        {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
        {"id": "custom.fillOpacity", "value": 0},
    ],
}


def timeseries(title, unit, queries, description=""):
    refs = "ABCDEFGHIJKLMNOP"
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "min": 0,
                "custom": {
                    "drawStyle": "line",
                    "lineWidth": 1,
                    "fillOpacity": 10,
                    "showPoints": "never",
                    "spanNulls": False,
                },
            },
            "overrides": [THRESHOLD_LINES],
        },
        "options": {
            "legend": {
                "displayMode": "table",
                "placement": "bottom",
                "calcs": ["mean", "max", "lastNotNull"],
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "targets": [target(q, a, refs[i]) for i, (q, a) in enumerate(queries)],
    }


def table(title, query, description=""):
    return {
        "type": "table",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "fieldConfig": {"defaults": {}, "overrides": []},
        "options": {"showHeader": True, "sortBy": [{"displayName": "Time", "desc": True}]},
        "targets": [target(query, "", "A", "table")],
    }


def row(title):
    return {"type": "row", "title": title, "collapsed": False, "panels": []}


def variable(name, label, query, multi=True):
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": query,
        "definition": query,
        "refresh": 2,  # on time range change: new nodes and pods appear
        "sort": 1,
        "multi": multi,
        "includeAll": multi,
        "allValue": ".*" if multi else None,
        "current": {},
        "hide": 0,
        "regex": "",
        "options": [],
    }


def tag_values(measurement, key, *where):
    w = cond(*where)
    return f'SHOW TAG VALUES FROM "{measurement}" WITH KEY = "{key}"' + (f" WHERE {w}" if w else "")


def var_cluster():
    return variable(
        "cluster_name", "Cluster", tag_values("uptime", "cluster_name"), multi=False
    )


def var_node():
    return variable("nodename", "Node", tag_values("uptime", "nodename", CLUSTER))


def var_namespace():
    return variable(
        "namespace_name", "Namespace", tag_values("uptime", "namespace_name", CLUSTER)
    )


def var_pod():
    return variable(
        "pod_name",
        "Pod",
        tag_values("uptime", "pod_name", CLUSTER, re_var("namespace_name", "namespace_name")),
    )


def layout(items):
    """Assigns gridPos: rows span the width, panels go two per line."""
    panels, y, x, pid = [], 0, 0, 1
    for item in items:
        item = dict(item)
        item["id"] = pid
        pid += 1
        if item["type"] == "row":
            if x:
                y, x = y + 8, 0
            item["gridPos"] = {"h": 1, "w": 24, "x": 0, "y": y}
            y += 1
        else:
            width = 24 if item["type"] == "table" else 12
            if x + width > 24:
                y, x = y + 8, 0
            item["gridPos"] = {"h": 8 if width == 12 else 12, "w": width, "x": x, "y": y}
            x += width
            if x >= 24:
                y, x = y + item["gridPos"]["h"], 0
        panels.append(item)
    return panels


def dashboard(schema, uid, title, variables, items, refresh="1m"):
    suffix = "" if schema.name == "default" else " (withfields)"
    return {
        "uid": f"heapster-{uid}" + ("" if schema.name == "default" else "-wf"),
        "title": f"Heapster / {title}{suffix}",
        "description": f"heapster-rs, InfluxDB schema: {schema.name}. Generated by grafana/generate.py.",
        "tags": ["heapster", "kubernetes", schema.name],
        "timezone": "browser",
        "editable": False,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": refresh,
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": variables},
        "annotations": {"list": []},
        "links": [
            {"type": "dashboards", "tags": ["heapster", schema.name], "asDropdown": True, "title": "Heapster"}
        ],
        "panels": layout(items),
    }


def cluster(s):
    node = cond(typ("node"), CLUSTER)
    sel = cond(typ("node"), CLUSTER, re_var("nodename", "nodename"))
    root = cond(typ("node"), CLUSTER, "\"resource_id\" = '/'")
    tot = lambda metric: summed(s, metric, node, ["nodename"])  # noqa: E731
    by = lambda metric, where=sel: series(s, metric, where, ["nodename"])  # noqa: E731
    items = [
        row("Cluster (sum over nodes)"),
        timeseries(
            "CPU",
            MILLICORES,
            [
                (tot("cpu/usage_rate"), "usage"),
                (tot("cpu/request"), "requests"),
                (tot("cpu/limit"), "limits"),
                (tot("cpu/node_allocatable"), "allocatable"),
            ],
            "Usage of all nodes against what pods requested, their limits and what the nodes can allocate.",
        ),
        timeseries(
            "Memory",
            BYTES,
            [
                (tot("memory/usage"), "usage"),
                (tot("memory/working_set"), "working set"),
                (tot("memory/request"), "requests"),
                (tot("memory/limit"), "limits"),
                (tot("memory/node_allocatable"), "allocatable"),
            ],
        ),
        timeseries(
            "Network",
            BYTES_RATE,
            [(tot("network/rx_rate"), "received"), (tot("network/tx_rate"), "sent")],
        ),
        timeseries(
            "Node filesystems (/)",
            BYTES,
            [
                (summed(s, "filesystem/usage", root, ["nodename"]), "usage"),
                (summed(s, "filesystem/limit", root, ["nodename"]), "limit"),
            ],
        ),
        row("By node ($nodename)"),
        timeseries(
            "CPU usage by node",
            MILLICORES,
            [
                (by("cpu/usage_rate"), "$tag_nodename usage"),
                (by("cpu/node_allocatable"), "$tag_nodename allocatable"),
            ],
        ),
        timeseries(
            "CPU utilization and reservation by node",
            FRACTION,
            [
                (by("cpu/node_utilization"), "$tag_nodename utilization"),
                (by("cpu/node_reservation"), "$tag_nodename reservation"),
            ],
            "Utilization = usage / allocatable; reservation = requests / allocatable.",
        ),
        timeseries(
            "Memory usage by node",
            BYTES,
            [
                (by("memory/working_set"), "$tag_nodename working set"),
                (by("memory/node_allocatable"), "$tag_nodename allocatable"),
            ],
        ),
        timeseries(
            "Memory utilization and reservation by node",
            FRACTION,
            [
                (by("memory/node_utilization"), "$tag_nodename utilization"),
                (by("memory/node_reservation"), "$tag_nodename reservation"),
            ],
            "Utilization = usage / allocatable; reservation = requests / allocatable.",
        ),
        timeseries(
            "Network by node",
            BYTES_RATE,
            [
                (by("network/rx_rate"), "$tag_nodename received"),
                (by("network/tx_rate"), "$tag_nodename sent"),
            ],
        ),
        timeseries(
            "Filesystem (/) by node",
            BYTES,
            [
                (by("filesystem/usage", cond(sel, "\"resource_id\" = '/'")), "$tag_nodename usage"),
                (by("filesystem/limit", cond(sel, "\"resource_id\" = '/'")), "$tag_nodename limit"),
            ],
        ),
    ]
    return dashboard(s, "cluster", "Cluster", [var_cluster(), var_node()], items)


def nodes(s):
    sel = cond(typ("node"), CLUSTER, re_var("nodename", "nodename"))
    sys = cond(typ("sys_container"), CLUSTER, re_var("nodename", "nodename"))
    pods = cond(typ("pod"), CLUSTER, re_var("nodename", "nodename"))
    by = lambda metric, where=sel, tags=("nodename",): series(s, metric, where, tags)  # noqa: E731
    items = [
        row("Node $nodename"),
        timeseries(
            "CPU",
            MILLICORES,
            [
                (by("cpu/usage_rate"), "$tag_nodename usage"),
                (by("cpu/request"), "$tag_nodename requests"),
                (by("cpu/limit"), "$tag_nodename limits"),
                (by("cpu/node_allocatable"), "$tag_nodename allocatable"),
                (by("cpu/node_capacity"), "$tag_nodename capacity"),
            ],
        ),
        timeseries(
            "Memory",
            BYTES,
            [
                (by("memory/usage"), "$tag_nodename usage"),
                (by("memory/working_set"), "$tag_nodename working set"),
                (by("memory/rss"), "$tag_nodename rss"),
                (by("memory/request"), "$tag_nodename requests"),
                (by("memory/limit"), "$tag_nodename limits"),
                (by("memory/node_allocatable"), "$tag_nodename allocatable"),
                (by("memory/node_capacity"), "$tag_nodename capacity"),
            ],
        ),
        timeseries(
            "Utilization (usage / allocatable)",
            FRACTION,
            [
                (by("cpu/node_utilization"), "$tag_nodename cpu"),
                (by("memory/node_utilization"), "$tag_nodename memory"),
            ],
        ),
        timeseries(
            "Reservation (requests / allocatable)",
            FRACTION,
            [
                (by("cpu/node_reservation"), "$tag_nodename cpu"),
                (by("memory/node_reservation"), "$tag_nodename memory"),
            ],
        ),
        timeseries(
            "Network",
            BYTES_RATE,
            [
                (by("network/rx_rate"), "$tag_nodename received"),
                (by("network/tx_rate"), "$tag_nodename sent"),
            ],
        ),
        timeseries(
            "Network errors",
            PER_SEC,
            [
                (by("network/rx_errors_rate"), "$tag_nodename receive errors/s"),
                (by("network/tx_errors_rate"), "$tag_nodename send errors/s"),
            ],
        ),
        timeseries(
            "Filesystems",
            BYTES,
            [
                (by("filesystem/usage", tags=("nodename", "resource_id")), "$tag_nodename $tag_resource_id usage"),
                (by("filesystem/limit", tags=("nodename", "resource_id")), "$tag_nodename $tag_resource_id limit"),
            ],
        ),
        timeseries(
            "Inodes free",
            COUNT,
            [(by("filesystem/inodes_free", tags=("nodename", "resource_id")), "$tag_nodename $tag_resource_id")],
        ),
        timeseries(
            "Page faults",
            PER_SEC,
            [
                (by("memory/page_faults_rate"), "$tag_nodename faults/s"),
                (by("memory/major_page_faults_rate"), "$tag_nodename major faults/s"),
            ],
        ),
        timeseries(
            "Uptime",
            MS,
            [(by("uptime"), "$tag_nodename")],
        ),
        row("Pressure, swap and processes ($nodename)"),
        timeseries(
            "Pressure stall: some tasks",
            PERCENT,
            [
                (by("cpu/pressure_some"), "$tag_nodename cpu"),
                (by("memory/pressure_some"), "$tag_nodename memory"),
                (by("io/pressure_some"), "$tag_nodename io"),
            ],
            "Share of the time at least one task waited for the resource (PSI, kubelets 1.34+ on cgroup v2).",
        ),
        timeseries(
            "Pressure stall: all tasks",
            PERCENT,
            [
                (by("cpu/pressure_full"), "$tag_nodename cpu"),
                (by("memory/pressure_full"), "$tag_nodename memory"),
                (by("io/pressure_full"), "$tag_nodename io"),
            ],
            "Share of the time all non-idle tasks waited at once: time lost outright.",
        ),
        timeseries(
            "Swap",
            BYTES,
            [
                (by("memory/swap_usage"), "$tag_nodename used"),
                (by("memory/swap_available"), "$tag_nodename available"),
            ],
        ),
        timeseries(
            "Processes",
            COUNT,
            [
                (by("process/count"), "$tag_nodename processes"),
                (by("process/limit"), "$tag_nodename limit"),
            ],
            "Processes running against the node's PID limit: PID exhaustion stops new processes.",
        ),
        row("System containers"),
        timeseries(
            "System containers CPU",
            MILLICORES,
            [(by("cpu/usage_rate", sys, ("nodename", "container_name")), "$tag_nodename $tag_container_name")],
        ),
        timeseries(
            "System containers memory (working set)",
            BYTES,
            [(by("memory/working_set", sys, ("nodename", "container_name")), "$tag_nodename $tag_container_name")],
        ),
        row("Pods on $nodename"),
        timeseries(
            "Pod CPU",
            MILLICORES,
            [(by("cpu/usage_rate", pods, ("namespace_name", "pod_name")), "$tag_namespace_name/$tag_pod_name")],
        ),
        timeseries(
            "Pod memory (working set)",
            BYTES,
            [(by("memory/working_set", pods, ("namespace_name", "pod_name")), "$tag_namespace_name/$tag_pod_name")],
        ),
        timeseries(
            "Pod cpu pressure (some tasks stalled)",
            PERCENT,
            [(by("cpu/pressure_some", pods, ("namespace_name", "pod_name")), "$tag_namespace_name/$tag_pod_name")],
        ),
        timeseries(
            "Pod processes",
            COUNT,
            [(by("process/count", pods, ("namespace_name", "pod_name")), "$tag_namespace_name/$tag_pod_name")],
        ),
    ]
    return dashboard(s, "nodes", "Nodes", [var_cluster(), var_node()], items)


def namespaces(s):
    ns = cond(typ("ns"), CLUSTER, re_var("namespace_name", "namespace_name"))
    pods = cond(typ("pod"), CLUSTER, re_var("namespace_name", "namespace_name"))
    by = lambda metric: series(s, metric, ns, ["namespace_name"])  # noqa: E731
    per_ns = lambda metric: summed(s, metric, pods, ["pod_name"], ["namespace_name"])  # noqa: E731
    items = [
        row("Namespaces ($namespace_name)"),
        timeseries(
            "CPU",
            MILLICORES,
            [
                (by("cpu/usage_rate"), "$tag_namespace_name usage"),
                (by("cpu/request"), "$tag_namespace_name requests"),
                (by("cpu/limit"), "$tag_namespace_name limits"),
            ],
        ),
        timeseries(
            "Memory",
            BYTES,
            [
                (by("memory/usage"), "$tag_namespace_name usage"),
                (by("memory/working_set"), "$tag_namespace_name working set"),
                (by("memory/request"), "$tag_namespace_name requests"),
                (by("memory/limit"), "$tag_namespace_name limits"),
            ],
        ),
        timeseries(
            "Network (sum over pods)",
            BYTES_RATE,
            [
                (per_ns("network/rx_rate"), "$tag_namespace_name received"),
                (per_ns("network/tx_rate"), "$tag_namespace_name sent"),
            ],
        ),
        timeseries(
            "Container restarts (sum over pods)",
            COUNT,
            [(per_ns("restart_count"), "$tag_namespace_name")],
        ),
        timeseries(
            "Processes",
            COUNT,
            [(by("process/count"), "$tag_namespace_name processes")],
        ),
        timeseries(
            "Swap used",
            BYTES,
            [(by("memory/swap_usage"), "$tag_namespace_name")],
        ),
        row("Pods in $namespace_name"),
        timeseries(
            "Pod CPU",
            MILLICORES,
            [(series(s, "cpu/usage_rate", pods, ["namespace_name", "pod_name"]), "$tag_namespace_name/$tag_pod_name")],
        ),
        timeseries(
            "Pod memory (working set)",
            BYTES,
            [(series(s, "memory/working_set", pods, ["namespace_name", "pod_name"]), "$tag_namespace_name/$tag_pod_name")],
        ),
    ]
    return dashboard(s, "namespaces", "Namespaces", [var_cluster(), var_namespace()], items)


def pods(s):
    pod_sel = cond(CLUSTER, re_var("namespace_name", "namespace_name"), re_var("pod_name", "pod_name"))
    ctr = cond(typ("pod_container"), pod_sel)
    pod = cond(typ("pod"), pod_sel)
    claims = cond(typ("pod"), CLUSTER, re_var("namespace_name", "namespace_name"), '"pvc_name" =~ /^.+$/')
    c = lambda metric, where=ctr: series(s, metric, where, ["pod_name", "container_name"])  # noqa: E731
    p = lambda metric, tags=("pod_name",): series(s, metric, pod, list(tags))  # noqa: E731
    items = [
        row("Containers of $pod_name"),
        timeseries(
            "CPU",
            MILLICORES,
            [
                (c("cpu/usage_rate"), "$tag_pod_name/$tag_container_name usage"),
                (c("cpu/request"), "$tag_pod_name/$tag_container_name requests"),
                (c("cpu/limit"), "$tag_pod_name/$tag_container_name limits"),
            ],
        ),
        timeseries(
            "Memory",
            BYTES,
            [
                (c("memory/usage"), "$tag_pod_name/$tag_container_name usage"),
                (c("memory/working_set"), "$tag_pod_name/$tag_container_name working set"),
                (c("memory/rss"), "$tag_pod_name/$tag_container_name rss"),
                (c("memory/request"), "$tag_pod_name/$tag_container_name requests"),
                (c("memory/limit"), "$tag_pod_name/$tag_container_name limits"),
            ],
        ),
        timeseries(
            "Restarts",
            COUNT,
            [(c("restart_count"), "$tag_pod_name/$tag_container_name")],
        ),
        timeseries(
            "Page faults",
            PER_SEC,
            [
                (c("memory/page_faults_rate"), "$tag_pod_name/$tag_container_name faults/s"),
                (c("memory/major_page_faults_rate"), "$tag_pod_name/$tag_container_name major faults/s"),
            ],
        ),
        timeseries(
            "Container pressure stall: some tasks",
            PERCENT,
            [
                (c("cpu/pressure_some"), "$tag_pod_name/$tag_container_name cpu"),
                (c("memory/pressure_some"), "$tag_pod_name/$tag_container_name memory"),
                (c("io/pressure_some"), "$tag_pod_name/$tag_container_name io"),
            ],
            "Share of the time at least one task of the container waited for the resource: "
            "cpu pressure with low usage means throttling.",
        ),
        timeseries(
            "Container swap",
            BYTES,
            [
                (c("memory/swap_usage"), "$tag_pod_name/$tag_container_name used"),
                (c("memory/swap_available"), "$tag_pod_name/$tag_container_name available"),
            ],
        ),
        timeseries(
            "Container filesystems",
            BYTES,
            [
                (
                    series(s, "filesystem/usage", ctr, ["pod_name", "container_name", "resource_id"]),
                    "$tag_pod_name/$tag_container_name $tag_resource_id",
                )
            ],
            "rootfs (/) and logs of each container.",
        ),
        row("Pod $pod_name"),
        timeseries(
            "Network",
            BYTES_RATE,
            [(p("network/rx_rate"), "$tag_pod_name received"), (p("network/tx_rate"), "$tag_pod_name sent")],
        ),
        timeseries(
            "Network errors",
            PER_SEC,
            [
                (p("network/rx_errors_rate"), "$tag_pod_name receive errors/s"),
                (p("network/tx_errors_rate"), "$tag_pod_name send errors/s"),
            ],
        ),
        timeseries(
            "Ephemeral storage",
            BYTES,
            [
                (p("ephemeral_storage/usage"), "$tag_pod_name usage"),
                (p("ephemeral_storage/request"), "$tag_pod_name requests"),
                (p("ephemeral_storage/limit"), "$tag_pod_name limits"),
            ],
        ),
        timeseries(
            "Pod filesystems and volumes",
            BYTES,
            [(p("filesystem/usage", ("pod_name", "resource_id")), "$tag_pod_name $tag_resource_id")],
        ),
        timeseries(
            "Pod pressure stall",
            PERCENT,
            [
                (p("cpu/pressure_some"), "$tag_pod_name cpu some"),
                (p("cpu/pressure_full"), "$tag_pod_name cpu full"),
                (p("memory/pressure_some"), "$tag_pod_name memory some"),
                (p("memory/pressure_full"), "$tag_pod_name memory full"),
                (p("io/pressure_some"), "$tag_pod_name io some"),
                (p("io/pressure_full"), "$tag_pod_name io full"),
            ],
            "some: at least one task waited; full: all non-idle tasks waited at once.",
        ),
        timeseries(
            "Pod swap",
            BYTES,
            [(p("memory/swap_usage"), "$tag_pod_name used")],
        ),
        timeseries(
            "Pod processes",
            COUNT,
            [(p("process/count"), "$tag_pod_name")],
        ),
        row("Volumes by claim ($namespace_name)"),
        timeseries(
            "Volumes by claim",
            BYTES,
            [
                (series(s, "filesystem/usage", claims, ["namespace_name", "pvc_name"]), "$tag_namespace_name/$tag_pvc_name used"),
                (series(s, "filesystem/limit", claims, ["namespace_name", "pvc_name"]), "$tag_namespace_name/$tag_pvc_name capacity"),
            ],
            "Fill level of each PersistentVolumeClaim, whichever pod mounts it: the series follow the claim across pod restarts.",
        ),
    ]
    return dashboard(
        s, "pods", "Pods", [var_cluster(), var_namespace(), var_pod()], items
    )


def events(s):
    m, f = s.events()
    if s.with_fields:
        variables = [
            variable("cluster_name", "Cluster", tag_values(m, "cluster_name"), multi=False),
            variable("namespace_name", "Namespace", tag_values(m, "namespace_name", CLUSTER)),
            variable("kind", "Kind", tag_values(m, "kind", CLUSTER, re_var("namespace_name", "namespace_name"))),
            variable("event_type", "Type", tag_values(m, "type", CLUSTER)),
            variable("reason", "Reason", tag_values(m, "reason", CLUSTER)),
        ]
        where = cond(
            CLUSTER,
            re_var("namespace_name", "namespace_name"),
            re_var("kind", "kind"),
            re_var("type", "event_type"),
            re_var("reason", "reason"),
        )
        count = (
            f'SELECT count("{f}") FROM "{m}" WHERE {cond(where, "$timeFilter")} '
            f'GROUP BY time({INTERVAL}), "type" fill(0)'
        )
        listing = (
            f'SELECT "namespace_name" AS "Namespace", "kind" AS "Kind", "object_name" AS "Object", '
            f'"type" AS "Type", "reason" AS "Reason", "hostname" AS "Node", "{f}" AS "Message" '
            f'FROM "{m}" WHERE {cond(where, "$timeFilter")} ORDER BY time DESC LIMIT 1000'
        )
        alias = "$tag_type"
    else:
        variables = [
            variable("cluster_name", "Cluster", tag_values(m, "cluster_name"), multi=False),
            variable("hostname", "Node", tag_values(m, "hostname", CLUSTER)),
        ]
        where = cond(CLUSTER, re_var("hostname", "hostname"))
        count = (
            f'SELECT count("{f}") FROM "{m}" WHERE {cond(where, "$timeFilter")} '
            f"GROUP BY time({INTERVAL}) fill(0)"
        )
        listing = (
            f'SELECT "hostname" AS "Node", "pod_name" AS "Pod", "{f}" AS "Event" '
            f'FROM "{m}" WHERE {cond(where, "$timeFilter")} ORDER BY time DESC LIMIT 1000'
        )
        alias = "events"
    panel = timeseries("Events", COUNT, [(count, alias)])
    panel["fieldConfig"]["defaults"]["custom"]["drawStyle"] = "bars"
    items = [panel, table("Latest events", listing, "Most recent first, at most 1,000.")]
    return dashboard(s, "events", "Events", variables, items)


BUILDERS = {
    "cluster": cluster,
    "nodes": nodes,
    "namespaces": namespaces,
    "pods": pods,
    "events": events,
}


def render():
    out = {}
    for schema in (Schema("default", False), Schema("withfields", True)):
        for name, build in BUILDERS.items():
            path = ROOT / "dashboards" / schema.name / f"{name}.json"
            out[path] = json.dumps(build(schema), indent=1, ensure_ascii=False) + "\n"
    return out


def write(rendered, command):
    """Writes the rendered files, or with --check reports those out of date (exit status 1)."""
    check = "--check" in sys.argv[1:]
    stale = []
    for path, text in rendered.items():
        current = path.read_text() if path.exists() else None
        if current != text:
            stale.append(path)
            if not check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
    if check and stale:
        for p in stale:
            print(f"out of date: {p.relative_to(ROOT.parent)}", file=sys.stderr)
        print(f"run: python3 {command}", file=sys.stderr)
        return 1
    return 0


def main():
    return write(render(), "grafana/generate.py")


if __name__ == "__main__":
    sys.exit(main())
