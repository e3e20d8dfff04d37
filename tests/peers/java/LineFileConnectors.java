// Kafka Connect source and sink connectors that copy a text file line by line, as Kafka's
// FileStreamSource/FileStreamSink do (connect-file is not published for 4.4.0 on Maven
// Central, so tests/peers/test_connect.py compiles these against connect-api 4.4 and loads
// them into a distributed worker of connect-runtime 4.4 through META-INF/services).
//
//   LineFileConnectors$Source  file=PATH topic=TOPIC: each line of PATH becomes one record
//       (value: the line), its source offset {"line": number of lines read}, under the source
//       partition {"file": PATH}; a restarted task resumes from its committed offset
//   LineFileConnectors$Sink    file=PATH topics=TOPIC: each record's value is appended to
//       PATH as a line (flushed before the worker commits the consumer offsets)
import java.io.*;
import java.nio.charset.StandardCharsets;
import java.nio.file.*;
import java.util.*;

import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.connect.connector.Task;
import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.sink.*;
import org.apache.kafka.connect.source.*;

public class LineFileConnectors {
    static final String VERSION = "4.4.0-odradek-test";
    static final ConfigDef CONFIG = new ConfigDef()
            .define("file", ConfigDef.Type.STRING, ConfigDef.Importance.HIGH, "the file")
            .define("topic", ConfigDef.Type.STRING, "", ConfigDef.Importance.HIGH, "source: the topic");

    public static class Source extends SourceConnector {
        private Map<String, String> props;
        @Override public String version() { return VERSION; }
        @Override public void start(Map<String, String> props) { this.props = props; }
        @Override public Class<? extends Task> taskClass() { return SourceLines.class; }
        @Override public List<Map<String, String>> taskConfigs(int maxTasks) { return List.of(props); }
        @Override public void stop() {}
        @Override public ConfigDef config() { return CONFIG; }
    }

    public static class SourceLines extends SourceTask {
        private Path file;
        private String topic;
        private long line;  // lines already turned into records
        @Override public String version() { return VERSION; }

        @Override public void start(Map<String, String> props) {
            file = Paths.get(props.get("file"));
            topic = props.get("topic");
            Map<String, Object> offset = context.offsetStorageReader().offset(partition());
            line = offset == null ? 0 : ((Number) offset.get("line")).longValue();
        }

        private Map<String, String> partition() { return Map.of("file", file.toString()); }

        @Override public List<SourceRecord> poll() throws InterruptedException {
            List<String> lines;
            try {
                lines = Files.readAllLines(file, StandardCharsets.UTF_8);
            } catch (IOException e) {
                throw new org.apache.kafka.connect.errors.ConnectException(e);
            }
            List<SourceRecord> out = new ArrayList<>();
            while (line < lines.size()) {
                String value = lines.get((int) line);
                line++;
                out.add(new SourceRecord(partition(), Map.of("line", line), topic, null,
                        Schema.STRING_SCHEMA, value));
            }
            if (out.isEmpty()) {
                Thread.sleep(100);
                return null;
            }
            return out;
        }

        @Override public void stop() {}
    }

    public static class Sink extends SinkConnector {
        private Map<String, String> props;
        @Override public String version() { return VERSION; }
        @Override public void start(Map<String, String> props) { this.props = props; }
        @Override public Class<? extends Task> taskClass() { return SinkLines.class; }
        @Override public List<Map<String, String>> taskConfigs(int maxTasks) { return List.of(props); }
        @Override public void stop() {}
        @Override public ConfigDef config() { return CONFIG; }
    }

    public static class SinkLines extends SinkTask {
        private Writer out;
        @Override public String version() { return VERSION; }

        @Override public void start(Map<String, String> props) {
            try {
                out = new OutputStreamWriter(new FileOutputStream(props.get("file"), true), StandardCharsets.UTF_8);
            } catch (IOException e) {
                throw new org.apache.kafka.connect.errors.ConnectException(e);
            }
        }

        @Override public void put(Collection<SinkRecord> records) {
            try {
                for (SinkRecord r : records) {
                    out.write(r.value() + "\n");
                }
            } catch (IOException e) {
                throw new org.apache.kafka.connect.errors.ConnectException(e);
            }
        }

        @Override public void flush(Map<org.apache.kafka.common.TopicPartition,
                org.apache.kafka.clients.consumer.OffsetAndMetadata> offsets) {
            try {
                out.flush();
            } catch (IOException e) {
                throw new org.apache.kafka.connect.errors.ConnectException(e);
            }
        }

        @Override public void stop() {
            try {
                out.close();
            } catch (IOException e) {
                throw new org.apache.kafka.connect.errors.ConnectException(e);
            }
        }
    }
}
