"""Read a node's partition log straight from its data dir: the batches, for comparing replicas."""

import os
from pathlib import Path

from odradek.protocol.records import HEADER_SIZE, parse_header


def log_batches(data_dir, topic: str, partition: int) -> list[tuple[int, int, int]]:
    """(base offset, last offset, CRC) of every batch of the partition's segments, in order."""
    directory = Path(data_dir) / f"{topic}-{partition}"
    batches = []
    for segment in sorted(directory.glob("*.log")):
        data = segment.read_bytes()
        pos = 0
        while pos + HEADER_SIZE <= len(data):
            header = parse_header(data, pos)
            if pos + header.size > len(data):
                break
            batches.append((header.base_offset, header.last_offset, header.crc))
            pos += header.size
    return batches


def checkpointed_high_watermark(data_dir, topic: str, partition: int) -> int | None:
    path = Path(data_dir) / "replication-offset-checkpoint"
    if not os.path.exists(path):
        return None
    for line in path.read_text().splitlines()[2:]:
        name, index, offset = line.rsplit(" ", 2)
        if name == topic and int(index) == partition:
            return int(offset)
    return None
