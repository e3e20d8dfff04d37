// A Kafka Streams 4.4 application with processing.guarantee=exactly_once_v2, run against
// Odradek by tests/peers/test_java_client.py (compiled at test time with JavaClient.java).
//
//   StreamsWordCount BOOTSTRAP APP_ID INPUT OUTPUT STATE_DIR
//
// A word count: lines of INPUT are split into words, repartitioned by word (an internal
// repartition topic), counted in a state store (changelogged to an internal compacted
// topic) and every new count is written to OUTPUT as (word, count). The record cache is
// off, so each input word yields one output record: under exactly-once a read_committed
// reader of OUTPUT sees, for each word, the counts 1, 2, ..., n in order, none missing and
// none twice, even across an instance killed mid-transaction (its transaction is aborted,
// its successor restores the store from the committed changelog and reprocesses from the
// committed offsets).
//
// Prints "STATE <new state>" on every state change (the test waits for RUNNING) and
// "UNCAUGHT <exception>" if a stream thread dies; closes cleanly when stdin closes
// (prints "CLOSED"), or dies by SIGKILL in the kill test.
import java.io.IOException;
import java.time.Duration;
import java.util.Arrays;
import java.util.Properties;

import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.state.Stores;

public class StreamsWordCount {
    public static void main(String[] args) throws IOException {
        String bootstrap = args[0], appId = args[1], input = args[2], output = args[3], stateDir = args[4];
        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
        p.put(StreamsConfig.STATE_DIR_CONFIG, stateDir);
        p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 200);
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
        p.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
        p.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        p.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        // A killed instance's partitions move after its session times out, and its open
        // transaction is aborted by the coordinator after transaction.timeout.ms.
        p.put(StreamsConfig.consumerPrefix("session.timeout.ms"), 6000);
        p.put(StreamsConfig.consumerPrefix("heartbeat.interval.ms"), 1000);
        p.put(StreamsConfig.producerPrefix("transaction.timeout.ms"), 5000);

        StreamsBuilder builder = new StreamsBuilder();
        builder.<String, String>stream(input)
                .flatMapValues(line -> Arrays.asList(line.split(" ")))
                .groupBy((key, word) -> word)
                .count(Materialized.<String, Long>as(Stores.inMemoryKeyValueStore("counts"))
                        .withKeySerde(Serdes.String()).withValueSerde(Serdes.Long()))
                .toStream()
                .map((word, count) -> KeyValue.pair(word, Long.toString(count)))
                .to(output);

        KafkaStreams streams = new KafkaStreams(builder.build(), p);
        streams.setStateListener((now, before) -> {
            System.out.println("STATE " + now);
            System.out.flush();
        });
        streams.setUncaughtExceptionHandler(e -> {
            System.out.println("UNCAUGHT " + e);
            System.out.flush();
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        streams.start();
        while (System.in.read() != -1) {
            // the test closes stdin to stop the application
        }
        streams.close(Duration.ofSeconds(20));
        System.out.println("CLOSED");
        System.out.flush();
    }
}
