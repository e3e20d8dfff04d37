"""Cross-check what we serve against Apache Kafka's message specs in ../shared/kafka-spec,
overlaid with Kafka 4.4's own (inside kafka-clients-4.4.0.jar) when tests/peers/kafka.py
has fetched it: where the two differ, the 4.4 jar wins (the snapshot may lag the newest
versions).

For every client-facing handler: its version range lies inside the spec's valid
versions and inside kafka-python's schema (our codec), and for every served version
the request and response fields (order, wire type, nullability, tags) that the codec
reads and writes are the spec's. Catches a codec built from newer Kafka specs that
dropped or renamed a field still on the wire at an older version.
"""

import json
import os
import re

import pytest

from odradek.broker.handlers import load_handlers
from tests.brokerproc import ROOT
from tests.conftest import CI

SPEC_DIR = os.path.join(os.path.dirname(ROOT), "shared", "kafka-spec", "message")
# kafka-python's names for fields Kafka calls otherwise; the wire format is the same.
RENAMES = {"clusterauthorizedoperations": "authorizedoperations",
           "topicauthorizedoperations": "authorizedoperations",
           # TxnOffsetCommit v3+: Kafka 4.4 renamed GenerationId (KIP-848's member epoch)
           "generationidormemberepoch": "generationid"}
WIRE_TYPE = {"bitfield": "int32"}  # kafka-python decodes these int32s as sets of bits


def _load(path: str) -> dict:
    with open(path) as f:
        return json.loads(re.sub(r"^\s*//.*$", "", f.read(), flags=re.M))


@pytest.fixture(scope="module")
def specs() -> dict:
    if not os.path.isdir(SPEC_DIR):
        if CI:
            pytest.fail(f"{SPEC_DIR} is missing; CI must run with ../shared beside the repo")
        pytest.skip(f"{SPEC_DIR} is absent (clone with ../shared beside the repo to run this)")
    out = {}
    for name in os.listdir(SPEC_DIR):
        if not name.endswith(".json"):
            continue
        spec = _load(os.path.join(SPEC_DIR, name))
        if spec.get("type") in ("request", "response"):
            out[(spec["apiKey"], spec["type"])] = spec
    out.update(_kafka_jar_specs())
    return out


def _kafka_jar_specs() -> dict:
    """Kafka 4.4's message specs from the cached kafka-clients jar, if fetched."""
    import zipfile

    from tests.peers import kafka
    if not kafka.is_fetched():
        return {}
    out = {}
    for jar in kafka.libs_dir().glob("kafka-clients-*.jar"):
        with zipfile.ZipFile(jar) as z:
            for entry in z.namelist():
                if entry.startswith("common/message/") and entry.endswith(".json"):
                    spec = json.loads(re.sub(r"^\s*//.*$", "", z.read(entry).decode(), flags=re.M))
                    if spec.get("type") in ("request", "response"):
                        out[(spec["apiKey"], spec["type"])] = spec
    return out


def _range(text: str | None) -> tuple[int, int] | None:
    if not text or text == "none":
        return None
    if text.endswith("+"):
        return int(text[:-1]), 10**6
    low, _, high = text.partition("-")
    return int(low), int(high or low)


def _within(text: str | None, version: int) -> bool:
    r = _range(text)
    return r is not None and r[0] <= version <= r[1]


def _wire_fields(fields: list, version: int, common: dict, prefix: str = "") -> list[tuple]:
    """The fields on the wire at ``version``, flattened, as (path, type, tag, nullable)."""
    out = []
    for f in fields:
        if not _within(f["versions"], version):
            continue
        name = f["name"].replace("_", "").lower()
        name = RENAMES.get(name, name)
        type_ = WIRE_TYPE.get(f["type"], f["type"])
        struct_name = type_[2:] if type_.startswith("[]") else type_
        out.append((prefix + name, type_, f.get("tag"), _within(f.get("nullableVersions"), version)))
        children = f.get("fields") or common.get(struct_name)
        if children:
            out += _wire_fields(children, version, common, prefix + name + ".")
    return out


def _common(spec: dict) -> dict:
    return {s["name"]: s["fields"] for s in spec.get("commonStructs", [])}


def client_handlers():
    return [h for h in load_handlers().values() if h.client_facing]


@pytest.mark.parametrize("handler", client_handlers(), ids=lambda h: h.request_class.__name__)
def test_served_range_inside_spec_and_codec(specs, handler):
    spec_range = _range(specs[(handler.api_key, "request")]["validVersions"])
    codec_max = handler.request_class.max_version
    assert spec_range[0] <= handler.min_version <= handler.max_version <= spec_range[1]
    assert handler.max_version <= codec_max


@pytest.mark.parametrize("handler", client_handlers(), ids=lambda h: h.request_class.__name__)
def test_fields_match_spec_for_served_versions(specs, handler):
    for kind, cls in (("request", handler.request_class), ("response", handler.response_class)):
        spec = specs[(handler.api_key, kind)]
        for version in range(handler.min_version, handler.max_version + 1):
            ours = _wire_fields(cls.json["fields"], version, _common(cls.json))
            kafka = _wire_fields(spec["fields"], version, _common(spec))
            assert ours == kafka, f"{cls.__name__} v{version} differs from the spec"


def test_flexible_versions_match_spec(specs):
    for handler in client_handlers():
        for kind, cls in (("request", handler.request_class), ("response", handler.response_class)):
            spec = specs[(handler.api_key, kind)]
            for version in range(handler.min_version, handler.max_version + 1):
                assert cls.flexible_version_q(version) == _within(spec["flexibleVersions"], version), \
                    f"{cls.__name__} v{version} flexibility"


def test_the_check_can_fail(specs):
    """A field dropped from the codec's schema is reported (guards the checker itself)."""
    spec = specs[(3, "response")]
    fields = [f for f in spec["fields"] if f["name"] != "ClusterAuthorizedOperations"]
    assert _wire_fields(fields, 9, {}) != _wire_fields(spec["fields"], 9, {})
