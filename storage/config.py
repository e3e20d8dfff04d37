"""Topic-level log configuration: Kafka's key names, defaults and validation.

One table, ``LOG_CONFIG_DEFS``, defines every key the log understands.  The
broker reuses it for CreateTopics/AlterConfigs validation and DescribeConfigs,
so a key, its default and its rule are written exactly once.  Values arrive as
strings from the wire and as ints/strings from code; ``ConfigDef.parse``
accepts both and raises ``ConfigError`` naming the key and the expected form.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1


class ConfigError(ValueError):
    """An invalid config value; the broker maps it to INVALID_CONFIG (40)."""

    error_code = 40


@dataclass(frozen=True)
class ConfigDef:
    name: str  # Kafka's key, e.g. "segment.bytes"
    type: str  # Kafka's DescribeConfigs type name: "int", "long", "string"
    default: int | str
    doc: str
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] = ()
    extra: Callable[[int], bool] | None = None  # e.g. "-1 or >= 0"
    expected: str = ""  # human form of the rule, for error messages

    def parse(self, raw: int | str) -> int | str:
        if self.type == "string":
            value = str(raw)
            if self.choices and value not in self.choices:
                raise ConfigError(f"{self.name}={value!r}: expected one of {', '.join(self.choices)}")
            return value
        try:
            value = int(raw) if not isinstance(raw, bool) else None
        except (TypeError, ValueError):
            value = None
        if value is None:
            raise ConfigError(f"{self.name}={raw!r}: expected {self.type} ({self.expected})")
        in_range = (self.minimum is None or value >= self.minimum) and (
            self.maximum is None or value <= self.maximum
        )
        if not in_range and not (self.extra and self.extra(value)):
            raise ConfigError(f"{self.name}={raw!r}: expected {self.expected}")
        return value


def _long(name, default, doc, minimum=0, maximum=INT64_MAX, unlimited=False):
    expected = f"an integer >= {minimum}" + (" or -1 (unlimited)" if unlimited else "")
    extra = (lambda v: v == -1) if unlimited else None
    return ConfigDef(name, "long", default, doc, minimum, maximum, extra=extra, expected=expected)


def _int(name, default, doc, minimum):
    return ConfigDef(
        name, "int", default, doc, minimum, INT32_MAX,
        expected=f"an integer in [{minimum}, {INT32_MAX}]",
    )  # fmt: skip


LOG_CONFIG_DEFS: dict[str, ConfigDef] = {
    d.name: d
    for d in (
        # positions in .index are int32, so a segment cannot exceed 2 GiB
        _int("segment.bytes", 1073741824, "Roll a segment at this size.", 14),
        _long("segment.ms", 604800000, "Roll a segment this long after its first batch.", 1),
        _int("segment.index.bytes", 10485760, "Preallocated size of each index file.", 12),
        _int("index.interval.bytes", 4096, "Bytes between sparse index entries.", 0),
        _long("retention.ms", 604800000, "Delete segments older than this.", 0, unlimited=True),
        _long("retention.bytes", -1, "Delete old segments above this size.", 0, unlimited=True),
        _long("flush.messages", INT64_MAX, "fsync after this many unflushed records.", 1),
        _long("flush.ms", INT64_MAX, "fsync this long after the first unflushed append.", 0),
        _int("max.message.bytes", 1048588, "Largest record batch accepted.", 0),
        ConfigDef(
            "message.timestamp.type", "string", "CreateTime", "Producer time or broker time.",
            choices=("CreateTime", "LogAppendTime"),
        ),  # fmt: skip
        _long("file.delete.delay.ms", 60000, "Accepted for compatibility; see storage docs.", 0),
    )
}


@dataclass(frozen=True)
class LogConfig:
    """Parsed topic config; attribute names are the keys with '.' -> '_'."""

    segment_bytes: int = 1073741824
    segment_ms: int = 604800000
    segment_index_bytes: int = 10485760
    index_interval_bytes: int = 4096
    retention_ms: int = 604800000
    retention_bytes: int = -1
    flush_messages: int = INT64_MAX
    flush_ms: int = INT64_MAX
    max_message_bytes: int = 1048588
    message_timestamp_type: str = "CreateTime"
    file_delete_delay_ms: int = 60000

    @classmethod
    def from_mapping(
        cls, values: Mapping[str, int | str], base: LogConfig | None = None
    ) -> LogConfig:
        """Parse Kafka keys over ``base`` (default: Kafka defaults).

        Unknown keys are refused: a typo in a topic config should not pass
        silently.  The broker filters out non-log keys before calling this.
        """
        parsed = dict(vars(base or cls()))
        for key, raw in values.items():
            definition = LOG_CONFIG_DEFS.get(key)
            if definition is None:
                raise ConfigError(f"unknown log config {key!r}")
            parsed[key.replace(".", "_")] = definition.parse(raw)
        return cls(**parsed)

    def to_mapping(self) -> dict[str, int | str]:
        return {f.name.replace("_", "."): getattr(self, f.name) for f in fields(self)}


# The dataclass defaults and the table must agree; fail at import, not in production.
assert LogConfig().to_mapping() == {k: d.default for k, d in LOG_CONFIG_DEFS.items()}
