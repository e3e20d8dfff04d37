"""The console's router: a GET under /console to (status, body, content type). (A POST,
one of the few actions, goes to ``actions``.)"""


import json
from collections.abc import Callable
from importlib import resources
from urllib.parse import parse_qs, unquote

from odradek.broker.cli.output import CliError
from odradek.broker.console import pages
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


async def answer(source, history: History, path: str, query_string: str) -> Answer:
    """(status, body, content type) for a GET of ``path`` under /console. ``source``
    gives the views: ``views.Local`` (a node's own state) or ``remote.Remote`` (a
    cluster's answers to Kafka requests, for ``odradek console``)."""
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
        return await _page(source, parts, query, api)
    except ValueError as e:
        return 400, f"bad query: {e}\n".encode(), "text/plain; charset=utf-8"
    except CliError as e:  # odradek console: the cluster did not answer, or refused
        return 502, f"the cluster did not answer: {e}\n".encode(), "text/plain; charset=utf-8"


# (first path segment, whether a name follows) -> (the source's view, page)
PAGES: dict[tuple[str, bool], tuple[str, Callable[[str, dict], bytes]]] = {
    ("", False): ("cluster", pages.cluster),
    ("topics", False): ("topics", pages.topics),
    ("topics", True): ("topic", pages.topic),
    ("groups", False): ("groups", pages.groups),
    ("groups", True): ("group", pages.group),
    ("connections", False): ("connections", pages.connections),
}

ACTION_PAGES = {"topics", "topic", "group"}  # (their render takes actions=True: forms)


async def _page(source, parts: list[str], query: dict, api: bool) -> Answer:
    if len(parts) == 3 and parts[0] == "topics" and parts[2] == "records":
        view = await source.records(parts[1], _int(query, "partition") or 0, _int(query, "offset"),
                                    _int(query, "timestamp"), _int(query, "count") or 10)
        if view is None:
            return _not_found(f"topic {parts[1]}")
        return _json(view) if api else (200, pages.records(source.label, view), HTML)
    key = (parts[0] if parts else "", len(parts) == 2)
    if len(parts) > 2 or key not in PAGES:
        return _not_found("/console/" + "/".join(parts))
    name, render = PAGES[key]
    view = await getattr(source, name)(*parts[1:])
    if view is None:
        return _not_found(" ".join(parts))
    if api:
        return _json(view)
    if name in ACTION_PAGES and source.actions:  # the write forms, where the node can authorize them
        return 200, render(source.label, view, actions=True), HTML  # type: ignore[call-arg]
    return 200, render(source.label, view), HTML
