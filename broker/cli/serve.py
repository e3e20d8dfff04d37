"""``odradek serve``: run a broker node.

    odradek serve --data-dir DIR --listen HOST:PORT [--advertised HOST:PORT]
                  [--node-id N] [--config FILE] [-o KEY=VALUE ...]

Settings are Kafka's keys: built-in defaults, then --config (a server.properties
file), then each -o, then the shorthands --listen, --advertised and --node-id.
A bad setting exits with status 2 and a message naming it; SIGTERM or SIGINT stops
the broker cleanly (exit 0).
"""

import argparse
import asyncio
import gc
import os
import signal
import sys

import structlog
import uvloop

from odradek.broker import logs, tls
from odradek.broker.config import BrokerConfig, ConfigError, parse_properties
from odradek.broker.sasl import parse_scram_seed

STOP_TIMEOUT_S = 4.0  # operators (and tests) expect a stop within 5 s


def build_config(args: argparse.Namespace) -> BrokerConfig:
    settings: dict[str, str] = {}
    if args.config:
        try:
            with open(args.config) as f:
                settings.update(parse_properties(f.read(), args.config))
        except OSError as e:
            raise ConfigError(f"cannot read --config {args.config}: {e.strerror}") from None
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"-o {item!r}: expected KEY=VALUE")
        settings[key.strip()] = value
    if args.listen:
        settings["listeners"] = f"PLAINTEXT://{args.listen}"
    if args.advertised:
        settings["advertised.listeners"] = f"PLAINTEXT://{args.advertised}"
    if args.node_id is not None:
        settings["node.id"] = str(args.node_id)
    if args.voters:
        settings["controller.quorum.voters"] = args.voters
    config = BrokerConfig(settings)
    try:
        config.scram_seeds = [parse_scram_seed(spec) for spec in args.add_scram]
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return config


async def serve(config: BrokerConfig, data_dir: str) -> None:
    from odradek.broker.broker import Broker  # imported here so `--help` stays fast
    from odradek.broker.systemd import notify

    log = structlog.get_logger("odradek")
    broker = Broker(config, data_dir)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await broker.start()
    # SIGHUP: re-read the TLS certificates (see Broker.reload_tls)
    loop.add_signal_handler(signal.SIGHUP, lambda: broker.tasks.spawn("reload_tls", broker.reload_tls, retries=0))
    notify(f"READY=1\nMAINPID={os.getpid()}\nSTATUS=serving")  # Type=notify units (deploy/)
    # Everything loaded so far (kafka-python's schema classes, the metadata image)
    # lives as long as the process: keep full collections from rescanning it.
    gc.freeze()
    await stop.wait()
    log.info("stopping")
    notify("STOPPING=1")
    try:
        await asyncio.wait_for(broker.stop(), STOP_TIMEOUT_S)
    except TimeoutError:
        log.warning("stop_timed_out", timeout_s=STOP_TIMEOUT_S)


def run(args: argparse.Namespace) -> int:
    try:
        config = build_config(args)
    except ConfigError as e:
        print(f"odradek: error: {e}", file=sys.stderr)
        return 2
    logs.configure(json=config["log.json"], level=config["log.level"])
    tls.keep_tls_read_buffers_lazy()  # idle TLS connections cost little (see there)
    try:
        uvloop.run(serve(config, args.data_dir))
    except ConfigError as e:
        print(f"odradek: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"odradek: error: {e}", file=sys.stderr)
        return 1
    return 0
