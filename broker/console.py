"""The read-only web console, served by the HTTP listener under /console.

Server-rendered HTML from the node's own structures (the metadata image, the partitions
hosted here, the groups coordinated here, the open connections): no front-end build,
nothing fetched from elsewhere, no JavaScript but one line that reloads the page every
``REFRESH_S`` seconds when ``?refresh=1`` asks for it. Every name shown is escaped; tables
stop at ``MAX_ROWS`` rows (and say so), so a large cluster cannot make a page unbounded.
Rendering reads in-memory state only, so it runs on the event loop like /metrics.

- ``/console``: the cluster: id, this node, the active controller, the quorum's voters
  and their lag, the brokers, partition counts (under-replicated and offline ones).
- ``/console/topics`` and ``/console/topics/NAME``: partitions with leader, replicas, ISR;
  log start and end offsets and size where the partition is hosted here; the topic's configs.
- ``/console/groups`` and ``/console/groups/ID``: the groups coordinated here, their state,
  members and lag per partition (committed offset against the high watermark here).
- ``/console/connections``: client connections with client software and principal.
- ``/console/messages/TOPIC/PARTITION?offset=N|time=T&count=C``: a few records of a partition
  hosted here (``messages``, async: the bytes are read and decoded on an executor thread).
"""

import asyncio
import collections
import html
import time
import urllib.parse
from collections.abc import Collection
from datetime import UTC, datetime

MAX_ROWS = 1000
REFRESH_S = 5
MAX_MESSAGES = 100  # records one message page shows at most
MESSAGE_BYTES = 1 << 20  # bytes of batches one message page reads at most
SHOWN_CHARS = 200  # of a key or value
SAMPLE_EVERY_S = 5
SAMPLES = 120  # ten minutes of charts


class History:
    """The last ``SAMPLES`` samples, one every ``SAMPLE_EVERY_S``, of each topic's bytes in
    (a counter) and each group's total lag, for the console's charts. Bounded: a sample
    holds only topics and groups that exist at that moment."""

    def __init__(self, samples: int = SAMPLES):
        self.samples: collections.deque[tuple[float, dict[str, int], dict[str, int]]] = \
            collections.deque(maxlen=samples)

    def record(self, now: float, bytes_in: dict[str, int], lag: dict[str, int]) -> None:
        self.samples.append((now, dict(bytes_in), dict(lag)))

    def rates(self, topic_name: str) -> list[float]:
        """Bytes in per second between consecutive samples (0 across a counter reset)."""
        out = []
        for (t0, a, _), (t1, b, _) in zip(self.samples, list(self.samples)[1:], strict=False):
            delta = b.get(topic_name, 0) - a.get(topic_name, 0)
            out.append(max(0.0, delta / (t1 - t0)) if t1 > t0 else 0.0)
        return out

    def lags(self, group_id: str) -> list[float]:
        return [float(lag.get(group_id, 0)) for _, _, lag in self.samples]


def sample(broker) -> None:
    """One sample of ``broker`` into ``broker.console_history``."""
    lag = {}
    if broker.groups is not None:
        for group_id, g in broker.groups.groups.items():
            lag[group_id] = sum(r[4] for r in _lag(broker, g) if r[4] is not None)
    broker.console_history.record(time.monotonic(), {name: t.bytes_in for name, t in
                                                      broker.stats.topics.items()}, lag)


async def run_sampler(broker) -> None:
    """Sample every ``SAMPLE_EVERY_S`` until cancelled (a task of the broker's supervisor)."""
    while True:
        sample(broker)
        await asyncio.sleep(SAMPLE_EVERY_S)


def sparkline(values: list[float], label: str, width: int = 240, height: int = 40) -> str:
    """An inline SVG line of ``values`` (no script, no external resource)."""
    if len(values) < 2:
        return '<span class="note">collecting…</span>'
    top = max(values) or 1.0
    step = width / (len(values) - 1)
    points = " ".join(f"{i * step:.1f},{height - 2 - v / top * (height - 4):.1f}"
                      for i, v in enumerate(values))
    return (f'<svg class="chart" width="{width}" height="{height}" role="img" '
            f'aria-label="{html.escape(label)}" data-last="{values[-1]:.1f}">'
            f'<polyline fill="none" stroke="#2f6fdf" stroke-width="1.5" points="{points}"/></svg>'
            f' <span class="note">{values[-1]:.1f} (max {top:.1f})</span>')

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2430}
nav{background:#1d2430;padding:.6em 1em}nav a{color:#fff;margin-right:1.2em;text-decoration:none}
main{padding:1em 1.5em}h1{font-size:1.3em}h2{font-size:1.1em;margin-top:1.5em}
table{border-collapse:collapse;margin:.5em 0}td,th{border-bottom:1px solid #dde;padding:.25em .8em;text-align:left}
th{background:#f2f4f8}td.n{text-align:right;font-variant-numeric:tabular-nums}
.note{color:#667}
"""


def _e(value) -> str:
    return html.escape("-" if value is None else str(value))


def _link(path: str, text) -> str:
    return f'<a href="{html.escape(path)}">{_e(text)}</a>'


def _table(columns: list[str], rows: list[list], raw: Collection[int] = (), table_id: str = "") -> str:
    """An HTML table; cells are escaped except the columns in ``raw`` (already HTML)."""
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = []
    for row in rows[:MAX_ROWS]:
        cells = []
        for i, v in enumerate(row):
            text = v if i in raw else _e(",".join(map(str, v)) if isinstance(v, list) else v)
            cls = ' class="n"' if isinstance(v, (int, float)) and not isinstance(v, bool) else ""
            cells.append(f"<td{cls}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = (f'<p class="note">{len(rows) - MAX_ROWS} more rows not shown</p>'
            if len(rows) > MAX_ROWS else "")
    if not rows:
        return '<p class="note">none</p>'
    ident = f' id="{html.escape(table_id)}"' if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{more}"


def _page(title: str, body: str, refresh: bool) -> bytes:
    script = (f"<script>setTimeout(function(){{location.reload()}},{REFRESH_S * 1000})</script>"
              if refresh else "")
    return (f"<!doctype html><html><head><meta charset=utf-8><title>{_e(title)} · Odradek</title>"
            f"<style>{STYLE}</style></head><body><nav>{_link('/console', 'Cluster')}"
            f"{_link('/console/topics', 'Topics')}{_link('/console/groups', 'Consumer groups')}"
            f"{_link('/console/connections', 'Connections')}</nav><main><h1>{_e(title)}</h1>"
            f"{body}</main>{script}</body></html>").encode()


def _hosted(broker, topic: str, index: int):
    replicas = broker.replicas
    return replicas.partitions.get((topic, index)) if replicas is not None else None


def overview(broker) -> tuple[str, str]:
    image = broker.image
    partitions = [p for t in image.topics.values() for p in t.partitions.values()]
    live = {n for n, b in image.brokers.items() if not b.fenced}
    under = sum(len(p.isr) < len(p.replicas) for p in partitions)
    offline = sum(p.leader < 0 or p.leader not in live for p in partitions)
    quorum = broker.metadata_log.describe() if broker.metadata_log is not None else None
    controller = broker.active_controller_id
    summary = _table(["cluster id", "this node", "active controller", "topics", "partitions",
                      "under-replicated", "offline", "ready"],
                     [[broker.cluster_id, broker.node_id, controller if controller >= 0 else "none",
                       len(image.topics), len(partitions), under, offline,
                       "yes" if broker.is_ready() else "no"]], table_id="summary")
    body = summary
    if quorum is not None:
        hw = quorum["high_watermark"]
        body += "<h2>Metadata quorum</h2>" + _table(
            ["voter", "role", "epoch", "log end offset", "lag"],
            [[v["node_id"], "leader" if v["node_id"] == quorum["leader_id"] else "follower",
              quorum["leader_epoch"], v["log_end_offset"],
              max(0, hw - v["log_end_offset"]) if v["log_end_offset"] >= 0 else None]
             for v in quorum["voters"]], table_id="quorum")
    body += "<h2>Brokers</h2>" + _table(
        ["node", "endpoints", "rack", "state"],
        [[b.node_id, " ".join(f"{name}://{h}:{p}" for name, (h, p) in sorted(b.endpoints.items())),
          b.rack, "fenced" if b.fenced else "alive"] for b in sorted(image.brokers.values(),
                                                                   key=lambda b: b.node_id)],
        table_id="brokers")
    return "Cluster", body


def topics(broker) -> tuple[str, str]:
    rows = []
    for name, t in sorted(broker.image.topics.items()):
        parts = t.partitions.values()
        hosted = [h for i in t.partitions if (h := _hosted(broker, name, i)) is not None]
        rows.append([_link(f"/console/topics/{urllib.parse.quote(name)}", name), len(parts),
                     max((len(p.replicas) for p in parts), default=0),
                     sum(len(p.isr) < len(p.replicas) for p in parts),
                     sum(h.log.log_end_offset for h in hosted),
                     sum(s.size for h in hosted for s in h.log.segments),
                     sparkline(broker.console_history.rates(name), f"bytes in per second of {name}")])
    return "Topics", _table(["topic", "partitions", "replication factor", "under-replicated",
                             "log end offsets (hosted here)", "bytes (hosted here)",
                             f"bytes in/s, last {SAMPLES * SAMPLE_EVERY_S // 60} min"], rows, {0, 6},
                            table_id="topics")


def topic(broker, name: str) -> tuple[str, str] | None:
    t = broker.image.topics.get(name)
    if t is None:
        return None
    rows = []
    for index, p in sorted(t.partitions.items()):
        h = _hosted(broker, name, index)
        browse = (_link(f"/console/messages/{urllib.parse.quote(name)}/{index}", "browse")
                  if h else "-")
        rows.append([index, p.leader, p.leader_epoch, p.replicas, p.isr,
                     h.log.log_start_offset if h else None, h.log.log_end_offset if h else None,
                     h.log.high_watermark if h else None,
                     sum(s.size for s in h.log.segments) if h else None, browse])
    configs = broker.image.topic_configs(name)
    body = (f'<p class="note">topic id {_e(t.topic_id)}; offsets and sizes of the partitions '
            f"hosted on node {_e(broker.node_id)}</p>"
            + _table(["partition", "leader", "leader epoch", "replicas", "isr", "log start offset",
                      "log end offset", "high watermark", "bytes", "records"], rows, {9},
                     table_id="partitions")
            + "<h2>Configs set on the topic</h2>"
            + _table(["key", "value"], [[k, v] for k, v in sorted(configs.items())], table_id="configs"))
    return f"Topic {name}", body


def _lag(broker, group) -> list[list]:
    rows = []
    for (topic_name, index), committed in sorted(group.offsets.items()):
        h = _hosted(broker, topic_name, index)
        end = h.log.high_watermark if h else None
        rows.append([topic_name, index, committed.offset, end,
                     max(0, end - committed.offset) if end is not None else None])
    return rows


def groups(broker) -> tuple[str, str]:
    coordinator = broker.groups
    rows = []
    for group_id, g in sorted((coordinator.groups if coordinator else {}).items()):
        lags = [r[4] for r in _lag(broker, g) if r[4] is not None]
        rows.append([_link(f"/console/groups/{urllib.parse.quote(group_id)}", group_id), g.state.value,
                     g.protocol_type, g.protocol_name, len(g.members), sum(lags)])
    return "Consumer groups", (
        f'<p class="note">groups coordinated by node {_e(broker.node_id)}</p>'
        + _table(["group", "state", "protocol type", "protocol", "members", "lag"], rows, {0},
                 table_id="groups"))


def group(broker, group_id: str) -> tuple[str, str] | None:
    g = broker.groups.groups.get(group_id) if broker.groups is not None else None
    if g is None:
        return None
    members = [[m.member_id, m.client_id, m.client_host, m.group_instance_id]
               for m in sorted(g.members.values(), key=lambda m: m.member_id)]
    body = (_table(["state", "generation", "protocol type", "protocol", "leader"],
                   [[g.state.value, g.generation_id, g.protocol_type, g.protocol_name, g.leader_id]],
                   table_id="group")
            + "<h2>Members</h2>" + _table(["member", "client id", "host", "group instance id"], members,
                                           table_id="members")
            + "<h2>Lag</h2>" + sparkline(broker.console_history.lags(group_id), f"lag of {group_id}")
            + _table(["topic", "partition", "committed offset", "high watermark", "lag"],
                     _lag(broker, g), table_id="lag"))
    return f"Group {group_id}", body


def connections(broker) -> tuple[str, str]:
    rows = [[c["listener"], c["peer"], c["client_id"], c["client_software_name"],
             c["client_software_version"], c["principal"], c["requests"], c["age_s"]]
            for c in (conn.describe() for conn in broker.connections)]
    rows.sort(key=lambda r: (r[0], str(r[1])))
    return "Connections", _table(["listener", "peer", "client id", "software", "version", "principal",
                                  "requests", "age (s)"], rows, table_id="connections")


def _shown(data: bytes | None) -> str | None:
    if data is None:
        return None
    text = data.decode(errors="replace")
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "…"


def _decode(read, first: int, count: int) -> list[list]:
    """On an executor thread: the batches' bytes as rows, from offset ``first`` on."""
    from kafka.record import MemoryRecords

    with read:
        records = MemoryRecords(read.read_bytes())
    rows: list[list] = []
    while records.has_next() and len(rows) < count:
        batch = records.next_batch()
        if batch is None:
            break
        for r in batch:
            if r.offset >= first and len(rows) < count:
                moment = datetime.fromtimestamp(r.timestamp / 1000, UTC).isoformat(timespec="milliseconds")
                rows.append([r.offset, moment, _shown(r.key), _shown(r.value),
                             " ".join(f"{k}={_shown(v)}" for k, v in r.headers or [])])
    return rows


def _int(query: dict, key: str, default: int | None) -> int | None:
    try:
        return int(query[key][0]) if key in query else default
    except ValueError:
        return default


async def messages(broker, topic_name: str, index: int, query: dict) -> tuple[str, str] | None:
    """Up to ``count`` records of a partition hosted here, from ``offset`` or the first at or
    after ``time`` (ms), else the last ``count`` below the high watermark."""
    h = _hosted(broker, topic_name, index)
    if h is None:
        return None
    log = h.log
    count = max(1, min(_int(query, "count", 20) or 20, MAX_MESSAGES))
    end = log.high_watermark
    offset = _int(query, "offset", None)
    timestamp = _int(query, "time", None)
    if timestamp is not None:
        found = log.offset_for_timestamp(timestamp)
        offset = found[0] if found is not None else end
    if offset is None:
        offset = end - count
    offset = min(max(offset, log.log_start_offset), end)
    rows: list[list] = []
    if offset < end:
        read = log.read(offset, MESSAGE_BYTES, max_offset=end)
        rows = await asyncio.get_running_loop().run_in_executor(None, _decode, read, offset, count)
    base = f"/console/messages/{urllib.parse.quote(topic_name)}/{index}"
    nav = " ".join(_link(f"{base}?offset={o}&count={count}", label) for o, label in (
        (log.log_start_offset, "first"), (max(log.log_start_offset, offset - count), "previous"),
        (offset + len(rows), "next"), (max(log.log_start_offset, end - count), "last")))
    body = (f'<p class="note">offsets {_e(log.log_start_offset)} to {_e(end)} (high watermark); '
            f"from offset {_e(offset)}: {nav}</p>"
            + _table(["offset", "timestamp", "key", "value", "headers"], rows, table_id="messages"))
    return f"{topic_name}-{index} records", body


async def render_async(broker, target: str, query: str) -> tuple[int, bytes]:
    """Pages that read from disk (the message browser); the rest through ``render``."""
    parts = [urllib.parse.unquote(p) for p in target.removeprefix("/console").split("/") if p]
    found = None
    if len(parts) == 3 and parts[0] == "messages" and parts[2].isdigit():
        found = await messages(broker, parts[1], int(parts[2]), urllib.parse.parse_qs(query))
    if found is None:
        return 404, _page("Not found", f"<p>no partition hosted here at {_e(target)}</p>", False)
    return 200, _page(*found, False)


def render(broker, target: str, query: str) -> tuple[int, bytes]:
    """The page at ``target`` (a path under /console): (status, HTML)."""
    parts = [urllib.parse.unquote(p) for p in target.removeprefix("/console").split("/") if p]
    found: tuple[str, str] | None
    if not parts:
        found = overview(broker)
    elif parts == ["topics"]:
        found = topics(broker)
    elif len(parts) == 2 and parts[0] == "topics":
        found = topic(broker, parts[1])
    elif parts == ["groups"]:
        found = groups(broker)
    elif len(parts) == 2 and parts[0] == "groups":
        found = group(broker, parts[1])
    elif parts == ["connections"]:
        found = connections(broker)
    else:
        found = None
    refresh = "refresh=1" in query.split("&")
    if found is None:
        return 404, _page("Not found", f"<p>nothing at {_e(target)}</p>", False)
    return 200, _page(*found, refresh)
