"""One error vocabulary: every error code the broker answers comes from ErrorCode."""

import re
from pathlib import Path

from odradek.protocol import records
from odradek.protocol.errors import ErrorCode
from odradek.storage import config, errors, producer_state

ROOT = Path(__file__).resolve().parents[2]


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def test_typed_errors_carry_error_codes_not_numbers():
    for base in (records.RecordError, errors.StorageError, producer_state.ProducerStateError,
                 config.ConfigError):
        for cls in (base, *_subclasses(base)):
            assert isinstance(cls.error_code, ErrorCode), cls


def test_no_module_writes_an_error_code_as_a_number():
    """A number beside an error's name (``= 56  # KAFKA_STORAGE_ERROR``) is a second
    vocabulary that can drift from Kafka's."""
    names = "|".join(e.name for e in ErrorCode if e is not ErrorCode.NONE)
    pattern = re.compile(rf"(error_code\s*=\s*-?\d+)|(=\s*-?\d+\s*#\s*({names})\b)|"
                         r"^[A-Z_]*(ERROR|NOT_FOUND)\s*=\s*-?\d+", re.MULTILINE)
    found = [f"{path.relative_to(ROOT)}: {m.group(0)}"
             for folder in ("broker", "protocol", "replication", "storage")
             for path in sorted((ROOT / folder).rglob("*.py"))
             for m in pattern.finditer(path.read_text())]
    assert found == []
