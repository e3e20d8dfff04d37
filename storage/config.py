"""Topic-level log configuration: Kafka's key names, defaults and validation.

One table, ``LOG_CONFIG_DEFS``, defines every key the log understands.  The
broker reuses it for CreateTopics/AlterConfigs validation and DescribeConfigs,
so a key, its default and its rule are written exactly once.  Values arrive as
strings from the wire and as ints/strings from code; ``ConfigDef.parse``
accepts both and raises ``ConfigError`` naming the key and the expected form.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from odradek.protocol.errors import ErrorCode

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1

# DescribeConfigs config_type values
BOOLEAN, STRING, INT, SHORT, LONG, DOUBLE, LIST, CLASS, PASSWORD = range(1, 10)
_TYPE_NAMES = {BOOLEAN: "true or false", STRING: "a string", INT: "an integer",
               SHORT: "an integer", LONG: "an integer", DOUBLE: "a number",
               LIST: "a comma-separated list", CLASS: "a class name", PASSWORD: "a string"}
_LIMITS = {SHORT: 2**15 - 1, INT: INT32_MAX, LONG: INT64_MAX}


class ConfigError(ValueError):
    """An invalid config value; the broker answers it with INVALID_CONFIG."""

    error_code = ErrorCode.INVALID_CONFIG


@dataclass(frozen=True, slots=True)
class ConfigDef:
    """One configuration key: Kafka's name, type, default and rule.

    ``synonym`` is, for a topic key, the broker key that supplies its default
    (``segment.bytes`` <- ``log.segment.bytes``), as Kafka's synonyms do.
    """

    name: str
    type: int
    default: Any
    doc: str = ""
    check: Callable[[Any], str | None] | None = None  # returns what is wrong, or None
    synonym: str | None = None

    def parse(self, raw: Any) -> Any:
        """Parse a string (or an already typed value) into this key's type, validated."""
        value = self._coerce(raw)
        if value is not None and self.check is not None:
            problem = self.check(value)
            if problem:
                raise ConfigError(f"Invalid value {raw!r} for configuration {self.name}: {problem}")
        return value

    def _coerce(self, raw: Any) -> Any:
        if raw is None:
            return None
        text = raw.strip() if isinstance(raw, str) else raw
        try:
            if self.type == BOOLEAN:
                if isinstance(text, bool):
                    return text
                if str(text).lower() in ("true", "false"):
                    return str(text).lower() == "true"
                raise ValueError
            if self.type in _LIMITS:
                if isinstance(text, bool):
                    raise ValueError
                value = int(text)
                if not -_LIMITS[self.type] - 1 <= value <= _LIMITS[self.type]:
                    raise ValueError
                return value
            if self.type == DOUBLE:
                return float(text)
            if self.type == LIST:
                if isinstance(text, list):
                    return text
                return [item.strip() for item in str(text).split(",") if item.strip()]
            return str(text)
        except ValueError:
            raise ConfigError(f"Invalid value {raw!r} for configuration {self.name}: "
                              f"expected {_TYPE_NAMES[self.type]}") from None


def at_least(minimum: int) -> Callable[[Any], str | None]:
    return lambda v: None if v >= minimum else f"must be at least {minimum}"


def one_of(*choices: str) -> Callable[[Any], str | None]:
    def check(v):
        values = v if isinstance(v, list) else [v]
        return f"must be one of {', '.join(choices)}" if any(x not in choices for x in values) else None
    return check


def between(low: float, high: float) -> Callable[[Any], str | None]:
    return lambda v: None if low <= v <= high else f"must be between {low} and {high}"


def defs(*items: ConfigDef) -> dict[str, ConfigDef]:
    return {d.name: d for d in items}


LOG_CONFIG_DEFS: dict[str, ConfigDef] = defs(
    # positions in .index are int32, so a segment cannot exceed 2 GiB
    ConfigDef("segment.bytes", INT, 1073741824, "Roll a segment at this size.", at_least(14),
              "log.segment.bytes"),
    ConfigDef("segment.ms", LONG, 604800000, "Roll a segment this long after its first batch.",
              at_least(1), "log.roll.ms"),
    ConfigDef("segment.index.bytes", INT, 10485760, "Preallocated size of each index file.",
              at_least(12), "log.index.size.max.bytes"),
    ConfigDef("index.interval.bytes", INT, 4096, "Bytes between sparse index entries.", at_least(0),
              "log.index.interval.bytes"),
    ConfigDef("retention.ms", LONG, 604800000, "Delete segments older than this; -1: never.",
              at_least(-1), "log.retention.ms"),
    ConfigDef("retention.bytes", LONG, -1, "Delete old segments above this size; -1: no limit.",
              at_least(-1), "log.retention.bytes"),
    ConfigDef("flush.messages", LONG, INT64_MAX, "fsync after this many unflushed records.",
              at_least(1), "log.flush.interval.messages"),
    ConfigDef("flush.ms", LONG, INT64_MAX, "fsync this long after the first unflushed append.",
              at_least(0), "log.flush.interval.ms"),
    ConfigDef("max.message.bytes", INT, 1048588, "Largest record batch accepted.", at_least(0),
              "message.max.bytes"),
    ConfigDef("message.timestamp.type", STRING, "CreateTime", "Producer time or broker time.",
              one_of("CreateTime", "LogAppendTime"), "log.message.timestamp.type"),
    ConfigDef("file.delete.delay.ms", LONG, 60000, "Accepted for compatibility; see storage docs.",
              at_least(0), "log.segment.delete.delay.ms"),
    ConfigDef("cleanup.policy", LIST, ["delete"],
              "delete: retention.ms and retention.bytes delete old segments. compact: they never "
              "do; the log cleaner keeps the latest record of each key (storage.cleaner). "
              "compact,delete: both.",
              one_of("delete", "compact"), "log.cleanup.policy"),
    ConfigDef("delete.retention.ms", LONG, 86400000,
              "How long a tombstone stays readable after the cleaner first cleaned it.",
              at_least(0), "log.cleaner.delete.retention.ms"),
    ConfigDef("min.cleanable.dirty.ratio", DOUBLE, 0.5,
              "Clean a log once its dirty bytes are this share of its cleanable bytes.",
              between(0.0, 1.0), "log.cleaner.min.cleanable.ratio"),
    ConfigDef("min.compaction.lag.ms", LONG, 0, "A record stays uncompacted at least this long.",
              at_least(0), "log.cleaner.min.compaction.lag.ms"),
    ConfigDef("max.compaction.lag.ms", LONG, INT64_MAX,
              "A record becomes cleanable at the latest this long after it was written.",
              at_least(1), "log.cleaner.max.compaction.lag.ms"),
)


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
    cleanup_policy: list[str] = field(default_factory=lambda: ["delete"])
    delete_retention_ms: int = 86400000
    min_cleanable_dirty_ratio: float = 0.5
    min_compaction_lag_ms: int = 0
    max_compaction_lag_ms: int = INT64_MAX

    @property
    def delete(self) -> bool:
        """Whether retention (time and size) may delete segments: Kafka's LogConfig.delete."""
        return "delete" in self.cleanup_policy

    @property
    def compact(self) -> bool:
        """Whether the log cleaner compacts this log: Kafka's LogConfig.compact."""
        return "compact" in self.cleanup_policy

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
