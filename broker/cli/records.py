"""``odradek produce`` and ``odradek consume``, through kafka-python's producer and consumer.

The client libraries already partition, batch, retry and track offsets; these commands
only turn lines into records and records into lines.

produce: one record per line of stdin or ``--file``; with ``--key-separator SEP`` the
text before the first SEP is the key; ``--header K=V`` (repeatable) goes on every
record. A file gets a progress bar (on stderr, by bytes read) when stderr is a terminal
or ``--progress`` asks for it.

consume: from ``--offset`` (earliest, latest or a number), ``--from-time`` (ms or ISO
8601) or, by default, the group's committed offsets or else the end; ``--count`` stops
after that many records; ``--group`` joins a group and commits what it printed;
``--idle-timeout`` stops after that long without a record. ``--format raw`` prints each
value as a line, ``json`` one JSON object per record.
"""

import base64
import json
import logging
import os
import sys
import time
from collections.abc import Iterator

import kafka.errors as Errors
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from odradek.broker.cli.admin import CLIENT_ID, explain, parse_assignments, parse_timestamp
from odradek.broker.cli.output import CliError


def _quiet(args) -> None:
    if not args.verbose:
        logging.getLogger("kafka").setLevel(logging.CRITICAL)


def _lines(stream, sep: str | None) -> Iterator[tuple[bytes | None, bytes]]:
    for raw in stream:
        line = raw.rstrip(b"\r\n") if isinstance(raw, bytes) else raw
        if sep is not None:
            key, found, value = line.partition(sep.encode())
            yield (key, value) if found else (None, line)
        else:
            yield None, line


def produce(args) -> int:
    _quiet(args)
    headers = [(k, v.encode()) for k, v in parse_assignments(args.header, "--header").items()]
    try:
        stream = open(args.file, "rb") if args.file else sys.stdin.buffer
    except OSError as e:
        raise CliError(f"cannot read --file {args.file}: {e.strerror}") from None
    try:
        producer = KafkaProducer(bootstrap_servers=args.bootstrap.split(","), client_id=CLIENT_ID,
                                 acks="all" if args.acks == "all" else int(args.acks),
                                 request_timeout_ms=int(args.timeout * 1000),
                                 max_block_ms=int(args.timeout * 1000))
    except Errors.KafkaError as e:
        stream.close()
        raise explain(e, args.bootstrap) from None
    sent = 0
    failures: list[Exception] = []
    progress = None
    try:
        try:
            producer.partitions_for(args.topic)
        except Errors.KafkaTimeoutError:
            raise CliError(f"no partitions of {args.topic} within {args.timeout:g} s: create the "
                           f"topic first (`odradek topics create {args.topic}`), or check "
                           "`odradek cluster status` for partitions without a leader") from None
        if args.file and (args.progress or sys.stderr.isatty()):
            from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

            from odradek.broker.cli.output import console
            progress = Progress("[progress.description]{task.description}", BarColumn(),
                                DownloadColumn(), TimeRemainingColumn(), console=console(stderr=True))
            task = progress.add_task(f"producing {os.path.basename(args.file)}",
                                     total=os.fstat(stream.fileno()).st_size)
            progress.start()
        for key, value in _lines(stream, args.key_separator):
            future = producer.send(args.topic, value=value, key=key, headers=headers or None,
                                   partition=args.partition)
            future.add_errback(failures.append)
            sent += 1
            if progress is not None:
                progress.update(task, completed=stream.tell())
        producer.flush(timeout=args.timeout)
    except Errors.KafkaError as e:
        raise explain(e, args.bootstrap) from None
    finally:
        if progress is not None:
            progress.stop()
        stream.close()
        producer.close(timeout=args.timeout)
    if failures:
        raise explain(failures[0], args.bootstrap)
    summary = {"topic": args.topic, "produced": sent}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"produced {sent} record(s) to {args.topic}", file=sys.stderr)
    return 0


def _text(data: bytes | None) -> str | None:
    """Bytes as text for JSON: UTF-8 if it is, else base64 prefixed ``base64:``."""
    if data is None:
        return None
    try:
        return data.decode()
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(data).decode()


def _position(consumer: KafkaConsumer, args, tps: list[TopicPartition]) -> None:
    """Seek ``tps`` to where the arguments say (assigned partitions only)."""
    if args.from_time is not None:
        ms = parse_timestamp(args.from_time)
        found = consumer.offsets_for_times({tp: ms for tp in tps})
        ends = consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, found[tp].offset if found.get(tp) is not None else ends[tp])
    elif args.offset == "earliest":
        consumer.seek_to_beginning(*tps)
    elif args.offset == "latest":
        consumer.seek_to_end(*tps)
    elif args.offset is not None:
        for tp in tps:
            consumer.seek(tp, int(args.offset))


def consume(args) -> int:
    _quiet(args)
    if args.offset not in (None, "earliest", "latest") and not args.offset.isdigit():
        raise CliError(f"--offset {args.offset!r}: give earliest, latest or a number")
    if args.group and (args.offset not in (None, "earliest", "latest") or args.from_time):
        raise CliError("with --group, consumption starts at the group's committed offsets; "
                       "move them with `odradek groups reset-offsets` (or drop --group)")
    if args.offset not in (None, "earliest", "latest") and args.partition is None:
        raise CliError("--offset N needs --partition P: offsets are per partition")
    fmt = "json" if args.json else args.format
    try:
        consumer = KafkaConsumer(bootstrap_servers=args.bootstrap.split(","), client_id=CLIENT_ID,
                                 group_id=args.group, enable_auto_commit=False,
                                 auto_offset_reset="earliest" if args.offset == "earliest" else "latest",
                                 request_timeout_ms=max(int(args.timeout * 1000), 5000))
    except Errors.KafkaError as e:
        raise explain(e, args.bootstrap) from None
    printed = 0
    out = sys.stdout
    try:
        if args.group:
            consumer.subscribe([args.topic])
        else:
            partitions = consumer.partitions_for_topic(args.topic)
            if not partitions:
                raise CliError(f"topic {args.topic} does not exist: `odradek topics list` shows "
                               "the topics that exist")
            chosen = [args.partition] if args.partition is not None else sorted(partitions)
            if any(p not in partitions for p in chosen):
                raise CliError(f"{args.topic} has partitions 0..{max(partitions)}; "
                               f"there is no {args.partition}")
            tps = [TopicPartition(args.topic, p) for p in chosen]
            consumer.assign(tps)
            _position(consumer, args, tps)
        idle_deadline = (time.monotonic() + args.idle_timeout) if args.idle_timeout else None
        while args.count is None or printed < args.count:
            batches = consumer.poll(timeout_ms=200, max_records=(args.count - printed)
                                    if args.count is not None else 500)
            if not batches:
                if idle_deadline is not None and time.monotonic() > idle_deadline:
                    break
                continue
            if args.idle_timeout:
                idle_deadline = time.monotonic() + args.idle_timeout
            records = sorted((r for rs in batches.values() for r in rs),
                             key=lambda r: (r.partition, r.offset))
            for r in records:
                if fmt == "json":
                    out.write(json.dumps({
                        "topic": r.topic, "partition": r.partition, "offset": r.offset,
                        "timestamp": r.timestamp, "key": _text(r.key), "value": _text(r.value),
                        "headers": {k: _text(v) for k, v in (r.headers or [])}}) + "\n")
                else:
                    out.write((r.value or b"").decode(errors="replace") + "\n")
                printed += 1
            out.flush()
            if args.group:
                consumer.commit()
    except KeyboardInterrupt:
        pass
    except Errors.KafkaError as e:
        raise explain(e, args.bootstrap) from None
    finally:
        consumer.close()
    if args.count is not None and printed < args.count:
        print(f"odradek: consumed {printed} of {args.count} record(s) before --idle-timeout",
              file=sys.stderr)
        return 1
    return 0
