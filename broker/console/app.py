"""The console's router: a GET under /console to (status, body, content type)."""


import asyncio
import json
from collections.abc import Callable
from importlib import resources
from urllib.parse import parse_qs, unquote

from odradek.broker.console import pages, views
from odradek.broker.console.history import History

STATIC = {"console.js": "text/javascript; charset=utf-8", "console.css": "text/css; charset=utf-8"}
HTML = "text/html; charset=utf-8"
JSON = "application/json"

Answer = tuple[int, bytes, str]


def _json(value) -> Answer:
    return 200, json.dumps(value).encode(), JSON


def _not_found(what: str) -> Answer:
    return 404, f"not found: {what}\n".encode(), "text/plain; charset=utf-8"


def _int(query: dict, key: str) -> int | None:
    """A number from the query string; None if absent, ValueError if it is not one."""
    values = query.get(key)
    return int(values[0]) if values and values[0].strip() else None


async def answer(broker, history: History, path: str, query_string: str) -> Answer:
    """(status, body, content type) for a GET of ``path`` under /console."""
    parts = [unquote(p) for p in path.split("/")[2:] if p]
    if parts[:1] == ["static"]:
        name = parts[1] if len(parts) == 2 else ""
        if name not in STATIC:
            return _not_found(path)
        return 200, resources.files("odradek.broker.console").joinpath("static", name).read_bytes(), STATIC[name]
    api = parts[:1] == ["api"]
    if api:
        parts = parts[1:]
        if parts[:1] == ["series"] and len(parts) == 3:
            kind, name = parts[1], parts[2]
            if kind == "topic":
                return _json({"points": history.topic_rates(name)})
            if kind == "group":
                return _json({"points": history.group_lag(name)})
            return _not_found(path)
    try:
        query = {k: v for k, v in parse_qs(query_string).items()}
        return await _page(broker, parts, query, api)
    except ValueError as e:
        return 400, f"bad query: {e}\n".encode(), "text/plain; charset=utf-8"


# (first path segment, whether a name follows) -> (view, page)
PAGES: dict[tuple[str, bool], tuple[Callable[..., dict | None], Callable[[int, dict], bytes]]] = {
    ("", False): (views.cluster, pages.cluster),
    ("topics", False): (views.topics, pages.topics),
    ("topics", True): (views.topic, pages.topic),
    ("groups", False): (views.groups, pages.groups),
    ("groups", True): (views.group, pages.group),
    ("connections", False): (views.connections, pages.connections),
}


async def _page(b, parts: list[str], query: dict, api: bool) -> Answer:
    if len(parts) == 3 and parts[0] == "topics" and parts[2] == "records":
        return await _records(b, parts[1], query, api)
    key = (parts[0] if parts else "", len(parts) == 2)
    if len(parts) > 2 or key not in PAGES:
        return _not_found("/console/" + "/".join(parts))
    view_of, render = PAGES[key]
    view = view_of(b, *parts[1:])
    if view is None:
        return _not_found(" ".join(parts))
    return _json(view) if api else (200, render(b.node_id, view), HTML)


async def _records(b, name: str, query: dict, api: bool) -> Answer:
    if name not in b.image.topics:
        return _not_found(f"topic {name}")
    partition = _int(query, "partition") or 0
    count = _int(query, "count") or 10
    local, start = views.start_offset(b, name, partition, _int(query, "offset"), _int(query, "timestamp"))
    rows: list[dict] = []
    where = ""
    if local is None:
        p = b.image.topics[name].partitions.get(partition)
        where = ("no such partition" if p is None else
                 f"node {b.node_id} holds no replica of {name}-{partition}: open the console of node "
                 f"{p.leader}, its leader")
    else:
        result = views.read_committed(local.log, start)
        if result is not None:
            try:
                data = await asyncio.to_thread(result.read_bytes)
            finally:
                result.release()
            rows = await asyncio.to_thread(views.decode_records, data, start, count)
    if api:
        return _json({"topic": name, "partition": partition, "start": start, "records": rows,
                      "note": where})
    return 200, pages.records(b.node_id, name, partition, start, rows, where), HTML
