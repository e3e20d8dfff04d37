"""HTML for the console's pages, rendered on the server from the dicts of ``views``.

Plain strings and ``html.escape``: a handful of tables needs no template engine, and
every value that came from a client (topic and group names, client ids, record keys,
values and headers) passes through ``e`` before it reaches the page. The only script,
static/console.js, redraws the charts from ``/console/api/series/...`` and sends the
action forms (``action_form``; shown only on a node with an authorizer, see
console.actions) with the header that tells them from a cross-site post.
"""

import html
import time
from urllib.parse import quote

NAV = (("Cluster", "/console"), ("Topics", "/console/topics"), ("Groups", "/console/groups"),
       ("Connections", "/console/connections"))


def e(value) -> str:
    return html.escape("" if value is None else str(value))


def q(value: str) -> str:
    """A name as one path segment."""
    return quote(value, safe="")


def page(title: str, label: str, body: str) -> bytes:
    nav = " ".join(f'<a href="{href}">{name}</a>' for name, href in NAV)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{e(title)} · Odradek</title>
<link rel="stylesheet" href="/console/static/console.css"></head>
<body><header><b>Odradek</b> {e(label)} <nav>{nav}</nav></header>
<main><h1>{e(title)}</h1>
{body}
</main><script src="/console/static/console.js"></script></body></html>""".encode()


def table(headers: list[str], rows: list[list[str]], empty: str = "none") -> str:
    """``rows`` hold HTML already escaped (cells may carry links)."""
    if not rows:
        return f'<p class="empty">{e(empty)}</p>'
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def chart(src: str, label: str) -> str:
    return (f'<figure><svg class="chart" data-src="{e(src)}" data-points="0" viewBox="0 0 600 160" '
            f'preserveAspectRatio="none" role="img" aria-label="{e(label)}"></svg>'
            f'<figcaption>{e(label)}: <span class="last">…</span></figcaption></figure>')


LOGIN_NOTE = ("The browser asks for a SCRAM user of the cluster (odradek users); the action is allowed "
              "only if that user's ACLs allow it, as for a Kafka client.")


def action_form(path: str, fields: str, button: str, then: str) -> str:
    """A POST form for console.js (which adds the X-Odradek-Console header and shows the
    answer in ``output``; ``then``: where to go once done)."""
    return (f'<form class="action" method="post" action="{e(path)}" data-then="{e(then)}">{fields}'
            f'<button>{e(button)}</button><output></output></form>')


def nbytes(n: float | None) -> str:
    if n is None:  # (not known: odradek console asks a cluster, which keeps no such count)
        return ""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _partition_list(rows: list[dict]) -> str:
    return table(["topic", "partition", "leader", "replicas", "ISR"],
                 [[f'<a href="/console/topics/{q(r["topic"])}">{e(r["topic"])}</a>', e(r["partition"]),
                   e(r["leader"]), e(r["replicas"]), e(r["isr"])] for r in rows])


def cluster(label: str, v: dict) -> bytes:
    nodes = table(["node", "endpoints", "rack", "state"],
                  [[e(n["node_id"]) + (" (controller)" if n["node_id"] == v["active_controller"] else ""),
                    e(", ".join(f"{k} {a}" for k, a in n["endpoints"].items())), e(n["rack"] or ""),
                    "fenced" if n["fenced"] else "serving"] for n in v["nodes"]])
    quorum = ""
    if v["quorum"] is not None:
        qv = v["quorum"]
        quorum = (f"<h2>Controller quorum</h2><p>leader {e(qv['leader_id'])}, epoch {e(qv['leader_epoch'])}, "
                  f"high watermark {e(qv['high_watermark'])}</p>"
                  + table(["voter", "log end offset", "lag"],
                          [[e(x["node_id"]), e(x["log_end_offset"]),
                            e(max(0, qv["high_watermark"] - x["log_end_offset"])
                              if x["log_end_offset"] >= 0 else "?")] for x in qv["voters"]]))
    body = (f'<p>cluster <code>{e(v["cluster_id"])}</code> · <span id="topic-count">{v["topics"]}</span> topics · '
            f'{v["partitions"]} partitions</p><h2>Nodes</h2>{nodes}{quorum}'
            f'<h2>Under-replicated partitions</h2>{_partition_list(v["under_replicated"])}'
            f'<h2>Offline partitions</h2>{_partition_list(v["offline"])}')
    return page("Cluster", label, body)


def topics(label: str, v: dict, actions: bool = False) -> bytes:
    rows = [[f'<a href="/console/topics/{q(t["name"])}">{e(t["name"])}</a>'
             + (" (internal)" if t["internal"] else ""), e(t["partitions"]),
             e(t["replication_factor"]), e(t["under_replicated"]), e(nbytes(t["size_here"])),
             f'<span class="messages-in">{e(t["messages_in"])}</span>', e(nbytes(t["bytes_in"])),
             e(nbytes(t["bytes_out"]))] for t in v["topics"]]
    return page("Topics", label, table(
        ["topic", "partitions", "RF", "under-replicated", "size here", "messages in (here)",
         "bytes in (here)", "bytes out (here)"], rows, "no topics")
        + (action_form("/console/topics", '<label>name <input name="name" required></label> '
                       '<label>partitions <input name="partitions" value="-1" size="4"></label> '
                       '<label>replication factor <input name="replication_factor" value="-1" size="3">'
                       '</label> ', "create topic", "/console/topics")
           + f'<p class="note">Needs CREATE on the cluster or the topic (-1: the broker\'s default). '
             f'{e(LOGIN_NOTE)}</p>' if actions else ""))


def topic(label: str, v: dict, actions: bool = False) -> bytes:
    name = v["name"]
    rows = []
    for p in v["partitions"]:
        here = p["here"]
        rows.append([e(p["partition"]), e(p["leader"]), e(p["leader_epoch"]), e(p["replicas"]), e(p["isr"]),
                     e(p.get("log_start_offset", "")), f'<span class="hw">{e(p.get("high_watermark", ""))}</span>',
                     e(p.get("log_end_offset", "")), e(nbytes(p["size"]) if here else "not here"),
                     f'<a href="/console/topics/{q(name)}/records?partition={p["partition"]}">browse</a>'
                     if here else ""])
    configs = table(["key", "value"], [[e(k), e(val)] for k, val in v["configs"].items()],
                    "no overrides: the broker's defaults apply")
    body = (f"<p>topic id <code>{e(v['topic_id'])}</code></p>"
            + table(["partition", "leader", "epoch", "replicas", "ISR", "log start", "high watermark",
                     "log end", "size", ""], rows)
            + chart(f"/console/api/series/topic/{q(name)}", "bytes/s in and out, last minutes")
            + f"<h2>Configs</h2>{configs}")
    if actions:
        body += (action_form(f"/console/topics/{q(name)}/delete", "", f"delete topic {name}", "/console/topics")
                 + f'<p class="note">Needs DELETE on the topic. {e(LOGIN_NOTE)}</p>')
    return page(f"Topic {name}", label, body)


def records(label: str, v: dict) -> bytes:
    name, partition, start, rows, where = v["topic"], v["partition"], v["start"], v["records"], v["note"]
    form = (f'<form method="get"><input type="hidden" name="partition" value="{partition}">'
            f'<label>offset <input name="offset" value="{e(start if start is not None else "")}" size="10"></label> '
            f'<label>or time (ms) <input name="timestamp" size="14"></label> '
            f'<label>count <input name="count" value="10" size="4"></label> <button>read</button></form>')
    if start is None:
        body = f"<p>{e(where)}</p>"
    else:
        body = form + table(
            ["offset", "timestamp", "key", "value", "headers"],
            [[e(r["offset"]), e(time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r["timestamp"] / 1000))
                                + f".{r['timestamp'] % 1000:03d}"),
              f'<code class="key">{e(r["key"])}</code>', f'<code class="value">{e(r["value"])}</code>',
              e(", ".join(f"{k}={val}" for k, val in r["headers"].items()))] for r in rows],
            "no committed records from here")
    return page(f"{name}-{partition} records", label,
                f'<p><a href="/console/topics/{q(name)}">back to {e(name)}</a></p>' + body)


def groups(label: str, v: dict) -> bytes:
    rows = [[f'<a href="/console/groups/{q(g["group_id"])}">{e(g["group_id"])}</a>', e(g["state"]),
             e(g["protocol_type"]), e(g["protocol"]), e(g["members"]), f'<span class="lag">{g["lag"]}</span>']
            for g in v["groups"]]
    return page("Consumer groups", label,
                table(["group", "state", "type", "protocol", "members", "lag"], rows,
                      "no groups coordinated by this node")
                + f'<p class="note">{e(v["note"])}</p>')


def group(label: str, v: dict, actions: bool = False) -> bytes:
    members = table(["member", "instance", "client id", "host", "assigned"],
                    [[e(m["member_id"]), e(m["group_instance_id"] or ""), e(m["client_id"]), e(m["client_host"]),
                      e(", ".join(m["assignment"]))] for m in v["members"]], "no members")
    offsets = table(["topic", "partition", "committed", "lag"],
                    [[e(o["topic"]), e(o["partition"]), e(o["committed"]),
                      e("?" if o["lag"] is None else o["lag"])] for o in v["offsets"]], "no committed offsets")
    body = (f"<p>state <b>{e(v['state'])}</b>, generation {e(v['generation_id'])}, "
            f"protocol {e(v['protocol_type'])}/{e(v['protocol'])}</p>"
            f"<h2>Members</h2>{members}<h2>Committed offsets and lag</h2>{offsets}"
            + chart(f"/console/api/series/group/{q(v['group_id'])}", "lag per partition, last minutes"))
    if actions:
        body += (action_form(f"/console/groups/{q(v['group_id'])}/delete", "",
                             f"delete group {v['group_id']}", "/console/groups")
                 + f'<p class="note">Needs DELETE on the group, which must have no members, as Kafka\'s '
                   f'DeleteGroups. {e(LOGIN_NOTE)}</p>')
    return page(f"Group {v['group_id']}", label, body)


def connections(label: str, v: dict) -> bytes:
    rows = [[e(c["listener"]), e(c["peer"]), f'<span class="client-id">{e(c["client_id"])}</span>',
             f'<span class="software">{e(c["client_software_name"])}</span>',
             e(c["client_software_version"]), e(c["principal"]), e(c["requests"]), e(c["age_s"])]
            for c in v["connections"]]
    return page("Connections", label, table(
        ["listener", "peer", "client id", "client software", "version", "principal", "requests",
         "age (s)"], rows, v.get("note") or "no client connections"))
