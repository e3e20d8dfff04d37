"""Our declarations (odradek.protocol.schemas) against Kafka 4.4's own spec files, read at
test time and never copied into the repository: for every version Kafka's spec declares
valid, the fields kafka-python's codec encodes (order, names, wire types, nullability,
tags, defaults, nested structs) and whether the version is flexible are the same, so a
typo in a declaration cannot change the bytes on the wire.

The references: ../shared/kafka-spec/message (the request and response specs; an older
trunk snapshot, so our versions must cover its versions) and the Kafka 4.4 jars cached by
tests/peers/kafka.py (kafka-clients for messages, kafka-group-coordinator for record
values; authoritative: our valid versions must equal its). Each reference present is
checked.
"""

import json
import re
import zipfile
from pathlib import Path

import pytest
from kafka.protocol.schemas import StructField
from kafka.protocol.schemas.load_json import _resolve_common_structs

from odradek.protocol.schemas import DECLARED
from tests.conftest import CI
from tests.peers import kafka

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "kafka-spec" / "message"
JARS = ("kafka-clients-4.4.0.jar", "kafka-group-coordinator-4.4.0.jar")
# Kafka's record-value type; kafka-python's ApiData takes the same spec as type "data".
TYPES = {"coordinator-value": "data"}
# Versions whose shape changed in Kafka 4.4 after the ../shared snapshot was taken (the
# jar wins): ShareFetchRequest v2 gained IsRenewAck (KIP-1222) in 4.4, the responses of
# AlterShareGroupOffsets and DeleteShareGroupOffsets a top-level ErrorCode and ErrorMessage.
NEWER_THAN_SHARED = {("ShareFetchRequest", 2), ("AlterShareGroupOffsetsResponse", 0),
                     ("DeleteShareGroupOffsetsResponse", 0)}


def _parse(text: str) -> dict:
    """A spec's JSON without its // comments, common structs resolved as kafka-python's
    load_json does."""
    spec = json.loads(re.sub(r"(?m)^\s*//.*$", "", text))
    _resolve_common_structs(spec["fields"], {s["name"]: s["fields"] for s in spec.get("commonStructs", [])})
    return spec


def _references(name: str) -> dict[str, dict]:
    """source -> Kafka's spec of ``name``, from every reference present."""
    out = {}
    if (SHARED / f"{name}.json").is_file():
        out["../shared"] = _parse((SHARED / f"{name}.json").read_text())
    for jar in (kafka.libs_dir() / j for j in JARS):
        if jar.is_file():
            with zipfile.ZipFile(jar) as z:
                if f"common/message/{name}.json" in z.namelist():
                    out[jar.name] = _parse(z.read(f"common/message/{name}.json").decode())
    return out


def _default(field) -> object:
    try:
        return field.default
    except (NotImplementedError, ValueError) as e:  # a struct without one: raises when read
        return type(e).__name__


def _shape(fields, version: int) -> list[tuple]:
    """What the codec encodes at ``version``, field by field, nested structs included."""
    return [(f._name, f.type_str, f.nullable_for_version_q(version),
             f.tag if f.tagged_field_q(version) else None, _default(f),
             _shape(f._fields, version) if f._fields else None)
            for f in fields if f.for_version_q(version)]


@pytest.mark.parametrize("name", sorted(DECLARED))
def test_declaration_encodes_as_kafkas_spec(name):
    ours = DECLARED[name]
    references = _references(name)
    if ours["type"] in ("request", "response") and CI:
        assert "../shared" in references, f"{SHARED}/{name}.json is missing; CI runs with ../shared beside the repo"
    if not references:
        pytest.skip(f"no Kafka spec of {name}: neither {SHARED} nor the 4.4 jars in {kafka.libs_dir()}")
    our_struct = StructField(ours)
    for source, spec in references.items():
        assert (ours["name"], ours["type"], ours["apiKey"]) == (
            spec["name"], TYPES.get(spec["type"], spec["type"]), spec["apiKey"]), source
        low, high = StructField.parse_versions(spec["validVersions"])
        our_low, our_high = StructField.parse_versions(ours["validVersions"])
        if source == "../shared":  # an older snapshot: 4.4 may have added versions since
            assert our_low == low and our_high >= high, source
        else:
            assert (our_low, our_high) == (low, high), source
        their_struct = StructField(spec)
        for version in range(low, high + 1):
            if source == "../shared" and (name, version) in NEWER_THAN_SHARED:
                continue
            flexible = [StructField.parse_versions(s["flexibleVersions"]) for s in (ours, spec)]
            assert [lo <= version <= hi for lo, hi in flexible] in ([True, True], [False, False]), (source, version)
            assert _shape(our_struct._fields, version) == _shape(their_struct._fields, version), (source, version)


def test_a_changed_declaration_is_caught():
    """The comparison sees a one-field slip (a nullable field declared non-nullable)."""
    spec = _parse(json.dumps(DECLARED["ConsumerGroupHeartbeatRequest"]))
    slipped = json.loads(json.dumps(spec))
    del slipped["fields"][3]["nullableVersions"]
    assert _shape(StructField(spec)._fields, 0) != _shape(StructField(slipped)._fields, 0)
