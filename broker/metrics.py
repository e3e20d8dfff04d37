"""The broker's metrics under Kafka's names, for Prometheus (served by broker.http).

Names are what Kafka's JMX beans become through the Prometheus JMX exporter's usual
rules (lower case, ``_`` for ``.``/``-``, counters ending ``_total``), so dashboards
and alerts written for Kafka read them: ``kafka.server:type=BrokerTopicMetrics,
name=BytesInPerSec,topic=T`` is ``kafka_server_brokertopicmetrics_bytesin_total{topic="T"}``.

Two kinds of numbers:

- Counts on the hot path (bytes and messages in, requests, latencies) are plain ints
  in dicts (``BrokerStats``), one dict update per event: no locks, no label lookups
  through prometheus-client's metric objects. The broker runs on one event loop, so
  nothing races.
- Everything that is state (partition counts, under-replicated partitions, log end
  offsets, consumer-group lag, the quorum) is read at scrape time from the broker's
  own structures by ``BrokerCollector``: nothing is kept up to date between scrapes.

Each broker has its own ``CollectorRegistry`` (tests run several in one process),
with prometheus-client's process collector for CPU, RSS and open descriptors.
"""

import collections
import os
import time
from bisect import bisect_left

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

from odradek.protocol.errors import ErrorCode

# Kafka's request-time histograms are in milliseconds (TotalTimeMs); bucket bounds in ms.
LATENCY_BUCKETS_MS = (0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)


def _error_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return str(code)


TOPIC_COUNTERS = ("bytes_in", "messages_in", "bytes_out", "replication_bytes_out",
                  "produce_requests", "failed_produce", "fetch_requests", "failed_fetch")


class TopicStats:
    """One topic's BrokerTopicMetrics counts. Attributes of a slotted object: an
    increment costs a third of a ``Counter[key] += n`` (measured)."""

    __slots__ = TOPIC_COUNTERS

    def __init__(self):
        for name in TOPIC_COUNTERS:
            setattr(self, name, 0)


class Histogram:
    """Request times in ms, counted by hand (a bisect and a few additions)."""

    __slots__ = ("buckets", "sum")

    def __init__(self):
        self.buckets = [0] * (len(LATENCY_BUCKETS_MS) + 1)  # the last one: +Inf
        self.sum = 0.0

    def observe(self, ms: float) -> None:
        self.buckets[bisect_left(LATENCY_BUCKETS_MS, ms)] += 1
        self.sum += ms

    def cumulative(self) -> list[tuple[str, int]]:
        out, total = [], 0
        for bound, n in zip((*map(str, LATENCY_BUCKETS_MS), "+Inf"), self.buckets, strict=True):
            total += n
            out.append((bound, total))
        return out


class RequestStats:
    """One API's RequestMetrics: requests by version, errors by code, and Kafka's time
    split. RequestQueueTimeMs: from the frame read off the socket to its handling
    (Kafka's request queue is here the connection's own queue of read frames, waiting
    behind the requests before it). LocalTimeMs: the handler. RemoteTimeMs: waiting for
    others (acks=-1 for the ISR, a flush, the responses queued before it).
    ResponseSendTimeMs: from the response ready to handed to the transport (pipelined
    responses are coalesced into one write; a fetch's file slices until on the socket);
    Kafka's ResponseQueueTimeMs is part of it here, there being no network thread to
    hand it to. TotalTimeMs: all of it, read to sent. A long-polling Fetch waits inside
    its handler, so that wait is local time here (Kafka's purgatory makes it remote)."""

    __slots__ = ("versions", "errors", "queue", "local", "remote", "send", "total")

    def __init__(self):
        self.versions: dict[int, int] = {}
        self.errors: dict[int, int] = {}
        self.queue, self.local, self.remote = Histogram(), Histogram(), Histogram()
        self.send, self.total = Histogram(), Histogram()

    def sent(self, received: float, ready: float, sent: float) -> None:
        """A response left (perf_counter() times): the send and total times."""
        self.send.observe((sent - ready) * 1000)
        self.total.observe((sent - received) * 1000)


class BrokerStats:
    """The broker's hot-path counters (see the module docstring); the handlers and the
    server add to them, the collector reads them."""

    def __init__(self, topic_exists=lambda name: True):
        self.topics: dict[str, TopicStats] = {}
        self.requests: dict[str, RequestStats] = {}  # by Kafka's request name
        self.topic_exists = topic_exists
        self.flush = Histogram()  # ms per log fsync (Kafka's LogFlushRateAndTimeMs)
        self._elsewhere = TopicStats()  # what topics that do not exist add up to: not shown

    def topic(self, name: str) -> TopicStats:
        """The counts of topic ``name``; only a topic that exists gets its own, so clients
        naming made-up topics cannot grow this (or the scrape) without bound."""
        t = self.topics.get(name)
        if t is None:
            if not self.topic_exists(name):
                return self._elsewhere
            t = self.topics[name] = TopicStats()
        return t

    def forget_deleted_topics(self) -> None:
        """Drop the counts of deleted topics (Kafka removes their metrics too)."""
        for name in [n for n in self.topics if not self.topic_exists(n)]:
            del self.topics[name]

    def request_done(self, name: str, version: int, received: float, arrived: float, handled: float,
                     now: float, error_code) -> RequestStats:
        """A response is ready (or, acks=0, none will come); times from perf_counter(): the
        frame was read, handling began, the handler returned, now. ``error_code``: the
        response's top-level one, if it has one (Kafka counts every error in a response;
        the per-partition ones of Produce and Fetch are the failed*requests counters).
        The caller calls ``sent`` on the result once the response left."""
        r = self.requests.get(name)
        if r is None:
            r = self.requests[name] = RequestStats()
        v = r.versions
        v[version] = v.get(version, 0) + 1
        r.queue.observe((arrived - received) * 1000)
        r.local.observe((handled - arrived) * 1000)
        r.remote.observe((now - handled) * 1000)
        if error_code is not None:
            r.errors[error_code] = r.errors.get(error_code, 0) + 1
        return r


class BrokerCollector:
    """Reads the broker's state at scrape time (see the module docstring)."""

    def __init__(self, broker):
        self.broker = broker

    def collect(self):
        b = self.broker
        stats: BrokerStats = b.stats
        stats.forget_deleted_topics()
        yield from self._topic_counters(stats)
        yield from self._requests(stats)
        if b.replicas is not None:
            yield from self._replicas(b)
        yield from self._controller(b)
        yield from self._connections(b)
        if b.groups is not None and b.replicas is not None:
            yield from self._group_lag(b)
        yield from self._loop_and_disk(b)
        ready = GaugeMetricFamily("odradek_broker_ready",
                                  "1 once registered, caught up with the metadata log and listening")
        ready.add_metric([], 1 if b.is_ready() else 0)
        yield ready

    @staticmethod
    def _topic_counters(stats: BrokerStats):
        prefix = "kafka_server_brokertopicmetrics_"
        for name, attr, doc in (
                ("bytesin", "bytes_in", "bytes produced to the topic's partitions led here"),
                ("bytesout", "bytes_out", "bytes fetched by consumers from the topic"),
                ("messagesin", "messages_in", "records produced to the topic"),
                ("totalproducerequests", "produce_requests", "produce requests, per partition"),
                ("failedproducerequests", "failed_produce", "failed produces, per partition"),
                ("totalfetchrequests", "fetch_requests", "fetch requests, per partition"),
                ("failedfetchrequests", "failed_fetch", "failed fetches, per partition"),
                ("replicationbytesout", "replication_bytes_out", "bytes fetched by followers")):
            family = CounterMetricFamily(prefix + name, doc, labels=["topic"])
            for topic, t in stats.topics.items():
                if getattr(t, attr):
                    family.add_metric([topic], getattr(t, attr))
            yield family

    @staticmethod
    def _requests(stats: BrokerStats):
        prefix = "kafka_network_requestmetrics_"
        requests = CounterMetricFamily(prefix + "requests", "requests served", labels=["request", "version"])
        errors = CounterMetricFamily(prefix + "errors", "responses by their top-level error code",
                                     labels=["request", "error"])
        times = [(HistogramMetricFamily(prefix + name + "timems", doc, labels=["request"]), attr)
                 for name, attr, doc in (
                     ("requestqueue", "queue", "ms from the request read off the socket to its handling"),
                     ("local", "local", "ms in the request's handler"),
                     ("remote", "remote", "ms waiting after the handler: replication (acks=-1), "
                                          "a flush, responses queued before it"),
                     ("responsesend", "send", "ms from the response ready to handed to the socket"),
                     ("total", "total", "ms from the request read off the socket to its response sent"))]
        for name, r in stats.requests.items():
            for version, n in r.versions.items():
                requests.add_metric([name, str(version)], n)
            for code, n in r.errors.items():
                errors.add_metric([name, _error_name(code)], n)
            for family, attr in times:
                h = getattr(r, attr)
                family.add_metric([name], h.cumulative(), h.sum)
        yield from (requests, errors, *(family for family, _ in times))

    @staticmethod
    def _loop_and_disk(b):
        """The event loop's lag (no Kafka counterpart: Kafka's network threads report
        their idle ratio instead) and Kafka's LogFlushStats."""
        g = GaugeMetricFamily("odradek_event_loop_lag_max_ms", "the longest the event loop ran "
                              f"late in the last {b.loop_lag.window_s} s (a blocking call stalls "
                              "every connection that long)")
        g.add_metric([], b.loop_lag.max_lag_ms())
        yield g
        h = b.stats.flush
        family = HistogramMetricFamily("kafka_log_logflushstats_logflushrateandtimems",
                                       "ms per fsync of a partition's log (flush.messages, flush.ms, "
                                       "segment rolls), from its start to its end on the flusher")
        family.add_metric([], h.cumulative(), h.sum)
        yield family

    @staticmethod
    def _cleaner(log_manager):
        """Kafka's kafka.log:type=LogCleaner and type=LogCleanerManager gauges (of the last
        pass; Kafka's are the maximum over its threads' last passes)."""
        cleaner = log_manager.cleaner
        directory = str(log_manager.data_dir)
        since = cleaner.time_of_last_run
        for name, value, doc, labels in (
                ("logcleaner_max_buffer_utilization_percent", 100 * cleaner.last_buffer_utilization,
                 "the offset map's fill in the last pass (log.cleaner.dedupe.buffer.size)", {}),
                ("logcleaner_cleaner_recopy_percent", 100 * cleaner.last_recopy_ratio,
                 "bytes written per byte read by the last pass", {}),
                ("logcleaner_max_clean_time_secs", cleaner.last_clean_time_s,
                 "seconds the last pass took", {}),
                ("logcleanermanager_max_dirty_percent", 100 * cleaner.dirtiest_ratio,
                 "the dirty share of the log chosen last (0: none was)", {}),
                ("logcleanermanager_time_since_last_run_ms",
                 0 if since is None else 1000 * (time.monotonic() - since),
                 "ms since the cleaner last chose a log (or found none)", {}),
                ("logcleanermanager_uncleanable_partitions_count", len(cleaner.uncleanable),
                 "partitions the cleaner failed on, skipped until a restart", {"logDirectory": directory}),
                ("logcleanermanager_uncleanable_bytes", cleaner.uncleanable_bytes(),
                 "bytes of those partitions' logs", {"logDirectory": directory})):
            g = GaugeMetricFamily("kafka_log_" + name, doc, labels=list(labels))
            g.add_metric(list(labels.values()), value)
            yield g

    @staticmethod
    def _replicas(b):
        rm = b.replicas
        prefix = "kafka_server_replicamanager_"
        led = [p for p in rm.partitions.values() if p.isr_state is not None]
        under_replicated = under_min_isr = 0
        for p in led:
            isr = p.isr_state.isr
            if len(isr) < len(p.isr_state.replicas):
                under_replicated += 1
            if len(isr) < rm.topic_config(p.topic)["min.insync.replicas"]:
                under_min_isr += 1
        for name, value, doc in (
                ("partitioncount", len(rm.partitions), "partitions hosted here"),
                ("leadercount", len(led), "partitions led here"),
                ("underreplicatedpartitions", under_replicated, "partitions led here with an ISR smaller than their replicas"),
                ("underminisrpartitioncount", under_min_isr, "partitions led here with an ISR below min.insync.replicas")):
            g = GaugeMetricFamily(prefix + name, doc)
            g.add_metric([], value)
            yield g
        for name, value, doc in (("isrshrinks", rm.isr_shrinks, "ISR shrinks the controller committed"),
                                 ("isrexpands", rm.isr_expands, "ISR expansions the controller committed")):
            c = CounterMetricFamily(prefix + name, doc)
            c.add_metric([], value)
            yield c
        yield from BrokerCollector._cleaner(rm.log_manager)
        size = GaugeMetricFamily("kafka_log_log_size", "bytes of the partition's log here",
                                 labels=["topic", "partition"])
        end = GaugeMetricFamily("kafka_log_log_logendoffset", "the partition's log end offset here",
                                labels=["topic", "partition"])
        start = GaugeMetricFamily("kafka_log_log_logstartoffset", "the partition's log start offset here",
                                  labels=["topic", "partition"])
        for (topic, index), p in rm.partitions.items():
            labels = [topic, str(index)]
            size.add_metric(labels, sum(s.size for s in p.log.segments))
            end.add_metric(labels, p.log.log_end_offset)
            start.add_metric(labels, p.log.log_start_offset)
        yield from (size, end, start)

    @staticmethod
    def _controller(b):
        prefix = "kafka_controller_kafkacontroller_"
        active = b.metadata_log is not None and b.active_controller_id == b.node_id
        g = GaugeMetricFamily(prefix + "activecontrollercount", "1 on the active controller")
        g.add_metric([], 1 if active else 0)
        yield g
        offline = 0
        if active:  # as in Kafka, only the active controller counts them
            offline = sum(1 for t in b.image.topics.values() for p in t.partitions.values()
                          if p.leader < 0 or p.leader not in b.image.brokers
                          or b.image.brokers[p.leader].fenced)
        g = GaugeMetricFamily(prefix + "offlinepartitionscount", "partitions without a live leader")
        g.add_metric([], offline)
        yield g
        if b.metadata_log is None or getattr(b.metadata_log, "node", True) is None:
            return
        quorum = b.metadata_log.describe()
        prefix = "kafka_server_raft_metrics_"
        for name, value, doc in (("current_epoch", quorum["leader_epoch"], "the quorum's term"),
                                 ("current_leader", quorum["leader_id"], "the quorum's leader (-1: none)"),
                                 ("high_watermark", quorum["high_watermark"], "the metadata log's high watermark")):
            g = GaugeMetricFamily(prefix + name, doc)
            g.add_metric([], value)
            yield g
        node = getattr(b.metadata_log, "node", None)
        state = node.role.name.lower() if node is not None else "leader"
        g = GaugeMetricFamily(prefix + "current_state", "1 for this node's Raft role", labels=["state"])
        g.add_metric([state], 1)
        yield g
        if quorum["leader_id"] == b.node_id:
            g = GaugeMetricFamily(prefix + "voter_lag", "records a voter's metadata log is behind the "
                                  "leader's high watermark (on the leader)", labels=["voter"])
            for v in quorum["voters"]:
                if v["log_end_offset"] >= 0:
                    g.add_metric([str(v["node_id"])], max(0, quorum["high_watermark"] - v["log_end_offset"]))
            yield g

    @staticmethod
    def _connections(b):
        prefix = "kafka_server_socket_server_metrics_"
        by_listener, by_client = collections.Counter(), collections.Counter()
        by_principal: collections.Counter = collections.Counter()
        for conn in b.connections:
            by_listener[conn.listener_name] += 1
            by_client[(conn.listener_name, *conn.client_software)] += 1
            by_principal[(conn.listener_name, getattr(conn, "principal", "User:ANONYMOUS"))] += 1
        g = GaugeMetricFamily(prefix + "connection_count", "open connections", labels=["listener"])
        for lst in b.config.listeners:
            g.add_metric([lst.name], by_listener[lst.name])
        yield g
        g = GaugeMetricFamily(prefix + "connections", "open connections by the client software "
                              "ApiVersions v3+ named (KIP-511)",
                              labels=["listener", "clientSoftwareName", "clientSoftwareVersion"])
        for labels, n in by_client.items():
            g.add_metric(list(labels), n)
        yield g
        g = GaugeMetricFamily(prefix + "principal_connection_count", "open connections by the "
                              "principal they authenticated as", labels=["listener", "principal"])
        for labels, n in by_principal.items():
            g.add_metric(list(labels), n)
        yield g

    @staticmethod
    def _group_lag(b):
        """kafka-exporter's names: committed offset and lag against the high watermark, for the
        groups coordinated here and the partitions hosted here."""
        offset = GaugeMetricFamily("kafka_consumergroup_current_offset", "the group's committed offset",
                                   labels=["consumergroup", "topic", "partition"])
        lag = GaugeMetricFamily("kafka_consumergroup_lag", "high watermark minus committed offset",
                                labels=["consumergroup", "topic", "partition"])
        for group_id, group in b.groups.groups.items():
            for (topic, index), committed in group.offsets.items():
                offset.add_metric([group_id, topic, str(index)], committed.offset)
            for (topic, index), n in b.groups.lag(group).items():
                lag.add_metric([group_id, topic, str(index)], n)
        yield offset
        yield lag


def new_registry(broker) -> CollectorRegistry:
    """A registry of this broker's metrics and its process's (CPU, RSS, descriptors)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BrokerCollector(broker))
    ProcessCollector(registry=registry, pid=lambda: os.getpid())
    return registry
