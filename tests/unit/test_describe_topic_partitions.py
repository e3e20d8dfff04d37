"""DescribeTopicPartitions' paging, the pure part (tests/peers holds it against Kafka 4.4)."""

from odradek.broker.handlers.describe_topic_partitions import Page, page

TOPICS = [("a", 3), ("b", 1), ("c", 2)]


def test_everything_fits():
    assert page(TOPICS, None, 2000, fetch_all=True) == Page([("a", 0, 3), ("b", 0, 1), ("c", 0, 2)], None)


def test_a_limit_inside_a_topic_points_the_cursor_at_the_first_partition_left_out():
    assert page(TOPICS, None, 2, fetch_all=True) == Page([("a", 0, 2)], ("a", 2))


def test_a_limit_used_up_at_a_topic_end_points_the_cursor_at_the_next_topic():
    assert page(TOPICS, ("a", 2), 2, fetch_all=True) == Page([("a", 2, 3), ("b", 0, 1)], ("c", 0))


def test_topics_before_the_cursor_are_left_out_and_the_limit_is_at_least_one():
    assert page(TOPICS, ("b", 0), 0, fetch_all=True) == Page([("b", 0, 1)], ("c", 0))


def test_unknown_named_topics_are_listed_while_the_limit_lasts_and_cost_nothing():
    topics = [("a", 1), ("ghost", None), ("z", 1)]
    assert page(topics, None, 2, fetch_all=False) == Page([("a", 0, 1), ("ghost", None, None),
                                                          ("z", 0, 1)], None)
    assert page(topics, None, 1, fetch_all=False) == Page([("a", 0, 1)], ("ghost", 0))


def test_a_cursor_past_the_partitions_gives_the_topic_without_partitions():
    assert page(TOPICS, ("a", 7), 2000, fetch_all=False) == Page([("a", 7, 7), ("b", 0, 1),
                                                                ("c", 0, 2)], None)
