"""DescribeTopicPartitions (key 75) held against Kafka 4.4: the same requests to both,
the answers compared field by field (topic ids normalised).

The 4.x admin client describes topics with it whenever the broker offers it (kafka-topics
--describe prints its ELR columns from it), and pages through many partitions with
its cursor: the paging rules are Kafka's, so Kafka answers what they are.
"""

import pytest
from kafka.protocol.admin import DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse

from odradek.broker.client import KafkaConnection
from tests.clients import create_topics
from tests.local_cluster import poll_until

R = DescribeTopicPartitionsRequest
TOPICS = {"dtp-a": 3, "dtp-b": 1, "dtp-c": 2}


def describe(bootstrap: str, names, limit: int = 2000, cursor: tuple[str, int] | None = None):
    request = R(topics=[R.TopicRequest(name=n) for n in names], response_partition_limit=limit,
                cursor=None if cursor is None else R.Cursor(topic_name=cursor[0],
                                                            partition_index=cursor[1]))
    with KafkaConnection(bootstrap.split(",")[0]) as conn:
        response = conn.roundtrip(request, 0, DescribeTopicPartitionsResponse)
    return normalise(response.to_dict())


def normalise(answer: dict) -> dict:
    """Topic ids differ between clusters; whether one is set does not (the zero id
    decodes as None)."""
    for topic in answer["topics"]:
        if topic["topic_id"] is not None:
            topic["topic_id"] = "<set>"
    return answer


@pytest.fixture
def both(kafka_peer, broker):
    """Kafka 4.4 and a fresh Odradek node, each with the topics of TOPICS."""
    for bootstrap in (kafka_peer.bootstrap, broker.bootstrap):
        for name, partitions in TOPICS.items():
            create_topics(bootstrap, [name], partitions=partitions)
        # A broker learns of a created topic a moment after the controller commits it.
        assert poll_until(lambda b=bootstrap: all(
            t["error_code"] == 0 and len(t["partitions"]) == TOPICS[t["name"]]
            for t in describe(b, TOPICS)["topics"]), 10), f"the topics on {bootstrap}"
    return kafka_peer.bootstrap, broker.bootstrap


CASES = {
    "named topics, unknown and invalid ones among them":
        dict(names=["dtp-c", "dtp-a", "dtp-missing", "bad name!", "dtp-b"]),
    "a limit that ends inside a topic": dict(names=["dtp-a", "dtp-b", "dtp-c"], limit=2),
    "a cursor, and a limit that ends at a topic's end":
        dict(names=["dtp-a", "dtp-b", "dtp-c"], limit=2, cursor=("dtp-a", 2)),
    "a cursor past the topic's partitions": dict(names=["dtp-a", "dtp-b"], cursor=("dtp-a", 7)),
    "a cursor topic that is not requested": dict(names=["dtp-a", "dtp-b"], cursor=("dtp-c", 0)),
    "a negative cursor partition": dict(names=["dtp-a"], cursor=("dtp-a", -1)),
    "a limit of 0 counts as 1": dict(names=["dtp-b", "dtp-c"], limit=0),
    "every topic from a cursor": dict(names=[], limit=3, cursor=("dtp-a", 1)),
}


def test_answers_as_kafka_does(both):
    kafka_bootstrap, odradek_bootstrap = both
    for case, args in CASES.items():
        expected = describe(kafka_bootstrap, **args)
        assert describe(odradek_bootstrap, **args) == expected, case

