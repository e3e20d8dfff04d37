// The Java client (kafka-clients 4.4) as a test client of Odradek: one scenario per JVM,
// compiled at test time by tests/peers/test_java_client.py against the cached jars.
//
// Scenarios (argument 1), each printing one line per fact on stdout for the test to read:
//   produce BOOTSTRAP TOPIC_PREFIX COUNT   the producer's defaults (idempotent, acks=all),
//       one topic per codec (PREFIX-none, -gzip, -snappy, -lz4, -zstd), COUNT records each
//       with keys, headers and timestamps from record(); prints "SENT codec partition offset"
//   consume BOOTSTRAP COUNT TOPIC...       assign partition 0 of each from the start until
//       COUNT records of each; prints "REC topic offset timestamp key value headers", bytes
//       in hex ("-" for null, "=" for empty)
//   group BOOTSTRAP TOPIC GROUP PARTITIONS [closed|killed] [classic|consumer]   three consumers
//         in one group, with that group.protocol (consumer: KIP-848)
//       (threads), member-0 closed once all have partitions; the other two take its
//       partitions and read what a producer writes afterwards; prints ASSIGNED / CLOSED /
//       TOOK_OVER / CONSUMED lines. "killed": member-0 is the `member` scenario in another
//       JVM; once all three hold partitions this prints READY and waits for a line on stdin
//       (the test SIGKILLs that JVM first: no LeaveGroup, the session times out)
//   member BOOTSTRAP TOPIC GROUP [classic|consumer]   one consumer, member-0, polling until killed;
//       prints "VICTIM_ASSIGNED partitions" on each assignment
//   admin BOOTSTRAP TOPIC                  create, describe, alter configs, delete topics
//   txn BOOTSTRAP TOPIC TXN_ID              a transactional producer commits (c0-c2), aborts
//       (a0, a1, sent first), commits (d0); a second producer with the same transactional.id
//       fences it mid-transaction (its commit fails: prints "FENCED exception-class");
//       then a read_committed consumer prints "COMMITTED value" per record it reads and a
//       read_uncommitted one "UNCOMMITTED value". After each step the coordinator's view
//       (Admin describeTransactions) is printed: "EPOCH step state epoch" (transactions v2
//       bumps the epoch with every commit and abort); a 4th argument "epochs" skips the consumers
//   share BOOTSTRAP TOPIC GROUP COUNT     share groups (KIP-932): the group's configs set
//       (share.auto.offset.reset=earliest, share.record.lock.duration.ms=2000), COUNT
//       records produced one batch each to partition 0; a KafkaShareConsumer "stalled"
//       acquires records and never acknowledges them (prints "STALLED offset"); then two
//       share consumers, member-a and member-b (threads, explicit acknowledgement; member-b
//       with share.acquire.mode=record_limit, ShareFetch v2), read until COUNT are accepted:
//       each releases every record whose offset is 5 mod 10 on its first delivery
//       ("RELEASED member offset"), renews the lock of one whose offset is 7 mod 10 the first
//       time it sees it ("RENEWED member offset": KIP-1222, the consumer hands it back on a
//       later poll) and accepts the rest ("ACCEPTED member offset deliveryCount"), an
//       acknowledgement the broker refused printed as "ACK_FAILED member partition error"; prints
//       "READY" once all are accepted and waits for a line on stdin before closing them (the
//       test describes the group meanwhile)
//   sharescale BOOTSTRAP TOPIC GROUP CONSUMERS   issue 20's scale scenario (tests/share_scale.py):
//       CONSUMERS KafkaShareConsumers (threads, explicit acknowledgement) accept every record
//       they get, each poll's acknowledgements committed at once, until a line on stdin;
//       prints tests/share_scale.py's lines: "D consumer ms partition offset deliveryCount"
//       per record delivered, "A consumer ms partition offset 1|0" per ACCEPT committed/refused
//   sharevictim BOOTSTRAP TOPIC GROUP   one KafkaShareConsumer, "victim": accepts half of the
//       first poll that brings two records or more, prints "HOLDING victim" and waits to be
//       SIGKILLed holding the rest
//   security TOPIC NAME=BOOTSTRAP=PROPERTIES_FILE...   for each, in this one JVM, a producer and
//       a consumer with that file's client settings (security.protocol, ssl.*, sasl.*): the
//       producer writes NAME to partition 0 ("PRODUCED name offset"), the consumer reads
//       from the start until it sees it ("CONSUMED name"); a case whose authentication fails
//       prints "REFUSED name exception-class" (the first exception in the cause chain that
//       is Kafka's AuthenticationException)
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.*;
import java.util.concurrent.*;
import java.util.concurrent.atomic.*;

import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.*;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.serialization.*;

public class JavaClient {
    static final String[] CODECS = {"none", "gzip", "snappy", "lz4", "zstd"};
    static final long T0 = 1_700_000_000_000L;

    public static void main(String[] args) throws Exception {
        switch (args[0]) {
            case "produce" -> produce(args[1], args[2], Integer.parseInt(args[3]));
            case "consume" -> consume(args[1], Integer.parseInt(args[2]),
                    Arrays.copyOfRange(args, 3, args.length));
            case "group" -> group(args[1], args[2], args[3], Integer.parseInt(args[4]),
                    args.length > 5 && args[5].equals("killed"), args.length > 6 ? args[6] : "classic");
            case "member" -> member(args[1], args[2], args[3], args.length > 4 ? args[4] : "classic");
            case "admin" -> admin(args[1], args[2]);
            case "txn" -> txn(args[1], args[2], args[3], args.length > 4 && args[4].equals("epochs"));
            case "share" -> share(args[1], args[2], args[3], Integer.parseInt(args[4]));
            case "sharescale" -> shareScale(args[1], args[2], args[3], Integer.parseInt(args[4]));
            case "sharevictim" -> shareVictim(args[1], args[2], args[3]);
            case "security" -> security(args[1], Arrays.copyOfRange(args, 2, args.length));
            default -> throw new IllegalArgumentException(args[0]);
        }
        System.out.flush();
    }

    // The records Java writes; test_java_client.expected_record() is the same function.
    static ProducerRecord<byte[], byte[]> record(String topic, String codec, int i) {
        byte[] key = i % 7 == 3 ? null : ("key-" + codec + "-" + i).getBytes(StandardCharsets.UTF_8);
        byte[] value = ("value-" + i + "-").repeat(1 + i % 5).getBytes(StandardCharsets.UTF_8);
        List<Header> headers = new ArrayList<>();
        headers.add(new RecordHeader("h-index", Integer.toString(i).getBytes(StandardCharsets.UTF_8)));
        if (i % 2 == 0) headers.add(new RecordHeader("h-null", null));
        if (i % 3 == 0) headers.add(new RecordHeader("h-bytes", new byte[]{0, (byte) 255, (byte) i}));
        return new ProducerRecord<>(topic, 0, T0 + i * 1000L, key, value, headers);
    }

    static Properties common(String bootstrap) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("request.timeout.ms", "15000");
        p.put("default.api.timeout.ms", "30000");
        return p;
    }

    static void produce(String bootstrap, String prefix, int count) throws Exception {
        for (String codec : CODECS) {
            Properties p = common(bootstrap);
            p.put("compression.type", codec);  // everything else: the producer's defaults
            try (var producer = new KafkaProducer<>(p, new ByteArraySerializer(), new ByteArraySerializer())) {
                List<Future<RecordMetadata>> sent = new ArrayList<>();
                for (int i = 0; i < count; i++) sent.add(producer.send(record(prefix + "-" + codec, codec, i)));
                producer.flush();
                for (var f : sent) {
                    RecordMetadata m = f.get(30, TimeUnit.SECONDS);
                    System.out.println("SENT " + codec + " " + m.partition() + " " + m.offset());
                }
            }
        }
        Properties p = common(bootstrap);
        System.out.println("DEFAULTS enable.idempotence=" + new ProducerConfig(withSerializers(p))
                .getBoolean("enable.idempotence") + " acks=" + new ProducerConfig(withSerializers(p)).getString("acks"));
    }

    static Properties withSerializers(Properties p) {
        p.put("key.serializer", ByteArraySerializer.class.getName());
        p.put("value.serializer", ByteArraySerializer.class.getName());
        return p;
    }

    static String hex(byte[] b) {
        if (b == null) return "-";
        if (b.length == 0) return "=";
        return HexFormat.of().formatHex(b);
    }

    static void consume(String bootstrap, int count, String[] topics) {
        Properties p = common(bootstrap);
        p.put("auto.offset.reset", "earliest");
        p.put("enable.auto.commit", "false");
        try (var consumer = new KafkaConsumer<>(p, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
            List<TopicPartition> tps = new ArrayList<>();
            for (String topic : topics) tps.add(new TopicPartition(topic, 0));
            consumer.assign(tps);
            consumer.seekToBeginning(tps);
            int got = 0;
            long deadline = System.currentTimeMillis() + 30_000;
            while (got < count * topics.length && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
                    StringBuilder h = new StringBuilder();
                    for (Header header : r.headers()) {
                        if (h.length() > 0) h.append(',');
                        h.append(hex(header.key().getBytes(StandardCharsets.UTF_8))).append(':').append(hex(header.value()));
                    }
                    System.out.println("REC " + r.topic() + " " + r.offset() + " " + r.timestamp() + " " + hex(r.key()) + " "
                            + hex(r.value()) + " " + (h.length() == 0 ? "=" : h));
                    got++;
                }
            }
        }
    }

    static Properties memberProps(String bootstrap, String groupId, int member) {
        return memberProps(bootstrap, groupId, member, "classic");
    }

    static Properties memberProps(String bootstrap, String groupId, int member, String protocol) {
        Properties p = common(bootstrap);
        if (protocol.equals("consumer")) {
            // KIP-848: the coordinator owns the session and heartbeat settings; the client
            // refuses session.timeout.ms and heartbeat.interval.ms with this protocol.
            p.put("group.protocol", "consumer");
            p.put("group.id", groupId);
            p.put("client.id", "member-" + member);
            p.put("auto.offset.reset", "earliest");
            return p;
        }
        p.put("group.id", groupId);
        p.put("client.id", "member-" + member);
        // earliest: a partition handed over before its first commit is read from its
        // start (the topic is fresh), so no record produced after the handover is missed
        p.put("auto.offset.reset", "earliest");
        p.put("session.timeout.ms", "6000");  // group.min.session.timeout.ms: a killed member's wait
        p.put("heartbeat.interval.ms", "500");
        return p;
    }

    static void member(String bootstrap, String topic, String groupId, String protocol) {
        try (var c = new KafkaConsumer<>(memberProps(bootstrap, groupId, 0, protocol), new ByteArrayDeserializer(),
                new ByteArrayDeserializer())) {
            c.subscribe(List.of(topic), new ConsumerRebalanceListener() {
                public void onPartitionsRevoked(Collection<TopicPartition> ps) { }
                public void onPartitionsAssigned(Collection<TopicPartition> ps) {
                    System.out.println("VICTIM_ASSIGNED " + ps.size());
                    System.out.flush();
                }
            });
            while (true) {
                c.poll(Duration.ofMillis(200));
                c.commitSync();
            }
        }
    }

    static void group(String bootstrap, String topic, String groupId, int partitions, boolean killed,
                      String protocol) throws Exception {
        int members = 3;
        List<Set<TopicPartition>> assigned = new ArrayList<>();
        List<AtomicBoolean> stop = new ArrayList<>();
        Set<String> consumedAfter = ConcurrentHashMap.newKeySet();
        AtomicBoolean counting = new AtomicBoolean(false);
        ExecutorService pool = Executors.newFixedThreadPool(members);
        List<Future<?>> running = new ArrayList<>();
        for (int m = 0; m < members; m++) {
            Set<TopicPartition> mine = ConcurrentHashMap.newKeySet();
            AtomicBoolean halt = new AtomicBoolean(false);
            assigned.add(mine);
            stop.add(halt);
            int member = m;
            if (killed && m == 0) {  // member-0 lives in the `member` JVM
                running.add(CompletableFuture.completedFuture(null));
                continue;
            }
            running.add(pool.submit(() -> {
                Properties p = memberProps(bootstrap, groupId, member, protocol);
                try (var c = new KafkaConsumer<>(p, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
                    c.subscribe(List.of(topic), new ConsumerRebalanceListener() {
                        public void onPartitionsRevoked(Collection<TopicPartition> ps) { mine.removeAll(ps); }
                        public void onPartitionsAssigned(Collection<TopicPartition> ps) { mine.addAll(ps); }
                        public void onPartitionsLost(Collection<TopicPartition> ps) { mine.removeAll(ps); }
                    });
                    while (!halt.get()) {
                        for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(200))) {
                            if (counting.get()) consumedAfter.add(r.partition() + "/" + r.offset());
                        }
                        c.commitSync();
                    }
                }  // close(): leaves the group, so the others rebalance at once
                mine.clear();
                return null;
            }));
        }
        if (killed) {
            awaitShare(assigned, partitions);
            System.out.println("READY");
            System.out.flush();
            new java.io.BufferedReader(new java.io.InputStreamReader(System.in)).readLine();
            System.out.println("KILLED member-0");
        } else {
            awaitCoverage(assigned, List.of(0, 1, 2), partitions, "ASSIGNED");
            stop.get(0).set(true);
            running.get(0).get(60, TimeUnit.SECONDS);
            System.out.println("CLOSED member-0");
        }
        awaitCoverage(assigned, List.of(1, 2), partitions, "TOOK_OVER");
        counting.set(true);
        int count = partitions * 10;
        Properties p = withSerializers(common(bootstrap));
        try (var producer = new KafkaProducer<byte[], byte[]>(p)) {
            for (int i = 0; i < count; i++)
                producer.send(new ProducerRecord<>(topic, i % partitions, null, ("after-" + i).getBytes()));
            producer.flush();
        }
        long deadline = System.currentTimeMillis() + 30_000;
        while (consumedAfter.size() < count && System.currentTimeMillis() < deadline) Thread.sleep(100);
        System.out.println("CONSUMED " + consumedAfter.size() + " of " + count);
        for (int m = 1; m < members; m++) stop.get(m).set(true);
        for (var f : running) f.get(60, TimeUnit.SECONDS);
        pool.shutdown();
    }

    /** Until members 1 and 2 each hold partitions and leave some to member-0 elsewhere. */
    static void awaitShare(List<Set<TopicPartition>> assigned, int partitions) throws InterruptedException {
        long deadline = System.currentTimeMillis() + 60_000;
        while (System.currentTimeMillis() < deadline) {
            int held = assigned.get(1).size() + assigned.get(2).size();
            if (!assigned.get(1).isEmpty() && !assigned.get(2).isEmpty() && held < partitions) return;
            Thread.sleep(100);
        }
        throw new IllegalStateException("members 1 and 2 never shared the partitions with member-0: " + assigned);
    }

    /** Until the given members together hold every partition, each holding some. */
    static void awaitCoverage(List<Set<TopicPartition>> assigned, List<Integer> members, int partitions,
                              String label) throws InterruptedException {
        long deadline = System.currentTimeMillis() + 60_000;
        while (System.currentTimeMillis() < deadline) {
            Set<TopicPartition> union = new HashSet<>();
            boolean each = true;
            for (int m : members) {
                union.addAll(assigned.get(m));
                each &= !assigned.get(m).isEmpty();
            }
            int total = 0;
            for (int m : members) total += assigned.get(m).size();
            if (each && union.size() == partitions && total == partitions) {
                for (int m : members) {
                    List<Integer> ps = new ArrayList<>();
                    for (TopicPartition tp : assigned.get(m)) ps.add(tp.partition());
                    Collections.sort(ps);
                    System.out.println(label + " member-" + m + " " + ps);
                }
                return;
            }
            Thread.sleep(100);
        }
        throw new IllegalStateException(label + ": members " + members + " never held all partitions: " + assigned);
    }

    /** A consumer of partition 0 of topic, from its first offset. */
    static KafkaConsumer<byte[], byte[]> fromStart(Properties p, String topic) {
        var consumer = new KafkaConsumer<>(p, new ByteArrayDeserializer(), new ByteArrayDeserializer());
        var tp = new TopicPartition(topic, 0);
        consumer.assign(List.of(tp));
        consumer.seekToBeginning(List.of(tp));
        return consumer;
    }

    static void security(String topic, String[] cases) throws Exception {
        for (String c : cases) {
            String[] parts = c.split("=", 3);
            String name = parts[0];
            Properties p = common(parts[1]);
            try (var in = new java.io.FileInputStream(parts[2])) {
                p.load(in);
            }
            p.put("max.block.ms", "15000");
            try (var producer = new KafkaProducer<>(p, new ByteArraySerializer(), new ByteArraySerializer())) {
                RecordMetadata m = producer.send(new ProducerRecord<>(topic, 0, null,
                        name.getBytes(StandardCharsets.UTF_8))).get(30, TimeUnit.SECONDS);
                System.out.println("PRODUCED " + name + " " + m.offset());
            } catch (Exception e) {
                Throwable t = e;
                while (t != null && !(t instanceof org.apache.kafka.common.errors.AuthenticationException)) t = t.getCause();
                if (t == null) throw e;
                System.out.println("REFUSED " + name + " " + t.getClass().getSimpleName());
                continue;
            }
            p.put("auto.offset.reset", "earliest");
            p.put("enable.auto.commit", "false");
            try (var consumer = fromStart(p, topic)) {
                long deadline = System.currentTimeMillis() + 30_000;
                boolean seen = false;
                while (!seen && System.currentTimeMillis() < deadline) {
                    for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500)))
                        seen |= new String(r.value(), StandardCharsets.UTF_8).equals(name);
                }
                if (seen) System.out.println("CONSUMED " + name);
            }
        }
    }

    static void admin(String bootstrap, String topic) throws Exception {
        try (Admin admin = Admin.create(common(bootstrap))) {
            admin.createTopics(List.of(new NewTopic(topic, 3, (short) 1)
                    .configs(Map.of("retention.ms", "3600000", "cleanup.policy", "delete")))).all().get();
            System.out.println("CREATED " + topic);
            TopicDescription d = describeOnceKnown(admin, topic);
            System.out.println("DESCRIBED " + d.name() + " partitions=" + d.partitions().size()
                    + " leaders=" + d.partitions().stream().allMatch(p -> p.leader() != null)
                    + " topicId=" + !d.topicId().equals(Uuid.ZERO_UUID));
            ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, topic);
            printConfig(admin, r, "retention.ms", "3600000");
            admin.incrementalAlterConfigs(Map.of(r, List.of(
                    new AlterConfigOp(new ConfigEntry("retention.ms", "7200000"), AlterConfigOp.OpType.SET),
                    new AlterConfigOp(new ConfigEntry("cleanup.policy", "compact"), AlterConfigOp.OpType.APPEND))))
                    .all().get();
            printConfig(admin, r, "retention.ms", "7200000");
            printConfig(admin, r, "cleanup.policy", "delete,compact");
            ConfigResource broker = new ConfigResource(ConfigResource.Type.BROKER,
                    Integer.toString(admin.describeCluster().nodes().get().iterator().next().id()));
            printConfig(admin, broker, "num.partitions", "1");
            offsetsAndGroups(admin, bootstrap, topic);
            admin.deleteTopics(List.of(topic)).all().get();
            long deadline = System.currentTimeMillis() + 30_000;
            while (admin.listTopics().names().get().contains(topic) && System.currentTimeMillis() < deadline)
                Thread.sleep(100);
            System.out.println("DELETED " + !admin.listTopics().names().get().contains(topic));
        }
    }

    /** listOffsets by spec and by time, then a group's offsets altered, listed, described
     *  and deleted through the admin client alone. */
    static void offsetsAndGroups(Admin admin, String bootstrap, String topic) throws Exception {
        try (var producer = new KafkaProducer<byte[], byte[]>(withSerializers(common(bootstrap)))) {
            for (int i = 0; i < 3; i++)
                producer.send(new ProducerRecord<>(topic, 0, T0 + (i == 1 ? 5000 : i * 1000L), new byte[]{(byte) i},
                        new byte[]{(byte) i})).get();  // keyed: the topic is compacted by now
        }
        TopicPartition tp = new TopicPartition(topic, 0);
        Map<String, OffsetSpec> specs = new LinkedHashMap<>();
        specs.put("earliest", OffsetSpec.earliest());
        specs.put("latest", OffsetSpec.latest());
        specs.put("maxTimestamp", OffsetSpec.maxTimestamp());
        specs.put("forTimestamp", OffsetSpec.forTimestamp(T0 + 1500));
        for (var spec : specs.entrySet()) {
            var info = admin.listOffsets(Map.of(tp, spec.getValue())).partitionResult(tp).get();
            System.out.println("OFFSETS " + spec.getKey() + " offset=" + info.offset() + " timestamp=" + info.timestamp());
        }
        String group = topic + "-group";
        admin.alterConsumerGroupOffsets(group, Map.of(tp, new OffsetAndMetadata(2, "meta"))).all().get();
        var committed = admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get();
        System.out.println("GROUP_OFFSETS " + committed.get(tp).offset() + " " + committed.get(tp).metadata());
        var described = admin.describeConsumerGroups(List.of(group)).describedGroups().get(group).get();
        System.out.println("GROUP " + described.groupId() + " state=" + described.groupState()
                + " members=" + described.members().size() + " simple=" + described.isSimpleConsumerGroup());
        boolean listed = admin.listGroups().all().get().stream().anyMatch(g -> g.groupId().equals(group));
        System.out.println("GROUP_LISTED " + listed);
        admin.deleteConsumerGroups(List.of(group)).all().get();
        System.out.println("GROUP_DELETED " + admin.listGroups().all().get().stream().noneMatch(g -> g.groupId().equals(group)));
    }

    /** A new topic's description once the broker knows it (Kafka's broker learns of a topic
     *  a moment after its controller created it). */
    static TopicDescription describeOnceKnown(Admin admin, String topic) throws Exception {
        long deadline = System.currentTimeMillis() + 10_000;
        while (true) {
            try {
                TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic);
                if (d.partitions().stream().allMatch(p -> p.leader() != null)
                        || System.currentTimeMillis() > deadline) return d;
            } catch (ExecutionException e) {
                if (!(e.getCause() instanceof UnknownTopicOrPartitionException)
                        || System.currentTimeMillis() > deadline) throw e;
            }
            Thread.sleep(50);
        }
    }

    /** A config's value and source, once it reads `expected`: Kafka's brokers apply a change
     *  a moment after the controller committed it. Prints what it last read either way. */
    static void printConfig(Admin admin, ConfigResource r, String key, String expected) throws Exception {
        ConfigEntry e;
        long deadline = System.currentTimeMillis() + 10_000;
        do {
            e = admin.describeConfigs(List.of(r)).all().get().get(r).get(key);
            if (expected.equals(e.value())) break;
            Thread.sleep(50);
        } while (System.currentTimeMillis() < deadline);
        System.out.println("CONFIG " + r.type() + " " + key + "=" + e.value() + " source=" + e.source());
    }

    static KafkaProducer<byte[], byte[]> transactional(String bootstrap, String txnId) {
        Properties p = common(bootstrap);
        p.put("transactional.id", txnId);
        p.put("transaction.timeout.ms", "60000");
        var producer = new KafkaProducer<>(p, new ByteArraySerializer(), new ByteArraySerializer());
        producer.initTransactions();
        return producer;
    }

    static void sendValues(KafkaProducer<byte[], byte[]> producer, String topic, String... values) throws Exception {
        for (String v : values) producer.send(new ProducerRecord<>(topic, 0, null, v.getBytes(StandardCharsets.UTF_8)));
        producer.flush();
    }

    static void printEpoch(Admin admin, String txnId, String step) throws Exception {
        var d = admin.describeTransactions(List.of(txnId)).description(txnId).get();
        System.out.println("EPOCH " + step + " " + d.state() + " " + d.producerEpoch());
    }

    static void txn(String bootstrap, String topic, String txnId, boolean epochsOnly) throws Exception {
        var admin = Admin.create(common(bootstrap));
        var first = transactional(bootstrap, txnId);
        printEpoch(admin, txnId, "init");
        first.beginTransaction();
        sendValues(first, topic, "c0", "c1", "c2");
        printEpoch(admin, txnId, "sent");
        first.commitTransaction();
        printEpoch(admin, txnId, "commit");
        first.beginTransaction();
        sendValues(first, topic, "a0", "a1");
        first.abortTransaction();
        printEpoch(admin, txnId, "abort");
        first.beginTransaction();
        first.abortTransaction();  // nothing sent: v2 still ends it (and bumps), v1 does nothing
        printEpoch(admin, txnId, "empty-abort");
        first.beginTransaction();
        sendValues(first, topic, "d0");
        first.commitTransaction();
        printEpoch(admin, txnId, "commit");
        first.beginTransaction();
        sendValues(first, topic, "zombie");
        try (var second = transactional(bootstrap, txnId)) {  // fences the first, aborts "zombie"
            printEpoch(admin, txnId, "fenced");
            try {
                first.commitTransaction();
                System.out.println("NOT_FENCED");
            } catch (KafkaException e) {
                System.out.println("FENCED " + e.getClass().getSimpleName());
            }
        }
        first.close(Duration.ZERO);
        admin.close();
        if (epochsOnly) return;
        for (String isolation : new String[]{"read_committed", "read_uncommitted"}) {
            Properties p = common(bootstrap);
            p.put("isolation.level", isolation);
            p.put("enable.auto.commit", "false");
            try (var consumer = fromStart(p, topic)) {
                long deadline = System.currentTimeMillis() + 5_000;
                while (System.currentTimeMillis() < deadline) {
                    for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(300))) {
                        System.out.println((isolation.equals("read_committed") ? "COMMITTED " : "UNCOMMITTED ")
                                + new String(r.value(), StandardCharsets.UTF_8));
                    }
                }
            }
        }
    }

    static KafkaShareConsumer<byte[], byte[]> shareConsumer(String bootstrap, String group, String clientId) {
        return shareConsumer(bootstrap, group, clientId, 3);
    }

    static KafkaShareConsumer<byte[], byte[]> shareConsumer(String bootstrap, String group, String clientId,
                                                           int maxPollRecords) {
        Properties p = common(bootstrap);
        p.put("group.id", group);
        p.put("client.id", clientId);
        p.put("share.acknowledgement.mode", "explicit");
        if (clientId.equals("member-b")) p.put("share.acquire.mode", "record_limit");
        p.put("max.poll.records", String.valueOf(maxPollRecords));
        p.put("key.deserializer", ByteArrayDeserializer.class.getName());
        p.put("value.deserializer", ByteArrayDeserializer.class.getName());
        return new KafkaShareConsumer<>(p);
    }

    static void share(String bootstrap, String topic, String group, int count) throws Exception {
        try (Admin admin = Admin.create(common(bootstrap))) {
            admin.incrementalAlterConfigs(Map.of(new ConfigResource(ConfigResource.Type.GROUP, group), List.of(
                    new AlterConfigOp(new ConfigEntry("share.auto.offset.reset", "earliest"), AlterConfigOp.OpType.SET),
                    new AlterConfigOp(new ConfigEntry("share.record.lock.duration.ms", "2000"),
                            AlterConfigOp.OpType.SET)))).all().get();
        }
        try (var producer = new KafkaProducer<byte[], byte[]>(withSerializers(common(bootstrap)))) {
            for (int i = 0; i < count; i++)  // one batch each: acquisition hands out whole batches
                producer.send(new ProducerRecord<>(topic, 0, null, ("v" + i).getBytes(StandardCharsets.UTF_8))).get();
        }
        var stalled = shareConsumer(bootstrap, group, "stalled");
        stalled.subscribe(List.of(topic));
        long deadline = System.currentTimeMillis() + 60_000;
        boolean got = false;
        while (!got && System.currentTimeMillis() < deadline) {
            for (ConsumerRecord<byte[], byte[]> r : stalled.poll(Duration.ofMillis(200))) {
                System.out.println("STALLED " + r.offset());
                got = true;
            }
        }
        AtomicInteger accepted = new AtomicInteger();
        ExecutorService pool = Executors.newFixedThreadPool(2);
        CountDownLatch release = new CountDownLatch(1);
        List<Future<?>> members = new ArrayList<>();
        for (String name : List.of("member-a", "member-b")) {
            members.add(pool.submit(() -> {
                try (var c = shareConsumer(bootstrap, group, name)) {
                    c.subscribe(List.of(topic));
                    Set<Long> renewed = new HashSet<>();
                    while (accepted.get() < count && System.currentTimeMillis() < deadline) {
                        for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(200))) {
                            short delivery = r.deliveryCount().orElse((short) -1);
                            if (r.offset() % 10 == 7 && delivery == 1 && renewed.add(r.offset())) {
                                c.acknowledge(r, AcknowledgeType.RENEW);
                                System.out.println("RENEWED " + name + " " + r.offset());
                            } else if (r.offset() % 10 == 5 && delivery == 1) {
                                c.acknowledge(r, AcknowledgeType.RELEASE);
                                System.out.println("RELEASED " + name + " " + r.offset());
                            } else {
                                c.acknowledge(r, AcknowledgeType.ACCEPT);
                                System.out.println("ACCEPTED " + name + " " + r.offset() + " " + delivery);
                                accepted.incrementAndGet();
                            }
                            Thread.sleep(50);  // some work: the other member, still joining, finds records left
                        }
                        c.commitSync().forEach((tip, error) -> error.ifPresent(e ->
                                System.out.println("ACK_FAILED " + name + " " + tip + " " + e)));
                    }
                    release.await();
                }
                return null;
            }));
        }
        while (accepted.get() < count && System.currentTimeMillis() < deadline) Thread.sleep(100);
        System.out.println("READY " + accepted.get());
        System.out.flush();
        new Scanner(System.in).nextLine();
        release.countDown();
        for (Future<?> f : members) f.get();
        pool.shutdown();
        stalled.close(Duration.ofSeconds(5));
        System.out.println("DONE");
    }

    static KafkaShareConsumer<byte[], byte[]> scaleConsumer(String bootstrap, String topic, String group, String name) {
        var c = shareConsumer(bootstrap, group, name, 100);
        c.subscribe(List.of(topic));
        return c;
    }

    // One poll's records accepted and committed; the "D" and "A" lines of tests/share_scale.py
    // printed in one call (println is atomic, the threads' lines do not interleave).
    static void acceptAll(KafkaShareConsumer<byte[], byte[]> c, String name, List<ConsumerRecord<byte[], byte[]>> records) {
        for (var r : records) c.acknowledge(r, AcknowledgeType.ACCEPT);
        var results = records.isEmpty() ? Map.<TopicIdPartition, Optional<KafkaException>>of() : c.commitSync();
        Set<Integer> failed = new HashSet<>();
        results.forEach((tp, error) -> { if (error.isPresent()) failed.add(tp.partition()); });
        long at = System.currentTimeMillis();
        var out = new StringBuilder();
        for (var r : records) out.append("A ").append(name).append(' ').append(at).append(' ').append(r.partition())
                .append(' ').append(r.offset()).append(failed.contains(r.partition()) ? " 0\n" : " 1\n");
        if (out.length() > 0) System.out.print(out);
    }

    static List<ConsumerRecord<byte[], byte[]>> delivered(KafkaShareConsumer<byte[], byte[]> c, String name) {
        List<ConsumerRecord<byte[], byte[]>> got = new ArrayList<>();
        c.poll(Duration.ofMillis(200)).forEach(got::add);
        long at = System.currentTimeMillis();
        var out = new StringBuilder();
        for (var r : got) out.append("D ").append(name).append(' ').append(at).append(' ').append(r.partition())
                .append(' ').append(r.offset()).append(' ').append(r.deliveryCount().orElse((short) -1)).append('\n');
        if (out.length() > 0) System.out.print(out);
        return got;
    }

    static void shareScale(String bootstrap, String topic, String group, int consumers) throws Exception {
        AtomicBoolean stop = new AtomicBoolean();
        ExecutorService pool = Executors.newFixedThreadPool(consumers);
        List<Future<?>> running = new ArrayList<>();
        for (int i = 0; i < consumers; i++) {
            String name = "j" + i;
            running.add(pool.submit(() -> {
                try (var c = scaleConsumer(bootstrap, topic, group, name)) {
                    while (!stop.get()) acceptAll(c, name, delivered(c, name));
                }
                return null;
            }));
        }
        new Scanner(System.in).nextLine();
        stop.set(true);
        for (Future<?> f : running) f.get();
        pool.shutdown();
    }

    static void shareVictim(String bootstrap, String topic, String group) throws Exception {
        var c = scaleConsumer(bootstrap, topic, group, "victim");
        while (true) {
            var got = delivered(c, "victim");
            if (got.size() >= 2) {
                acceptAll(c, "victim", got.subList(0, got.size() / 2));
                System.out.println("HOLDING victim");
                System.out.flush();
                Thread.sleep(Long.MAX_VALUE);  // until SIGKILLed
            }
            acceptAll(c, "victim", got);
        }
    }
}
