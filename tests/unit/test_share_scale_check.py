"""The checker of the share-group scale scenario (tests/share_scale.py) fails on what it
must catch: a record accepted twice, delivered while another consumer held it, acquired
twice at once, never delivered, or left with the killed victim."""

import pytest

from tests.share_scale import check

EXPECTED = {(0, 0), (0, 1)}
# The victim accepts offset 0 and is killed holding offset 1, which c0 gets next.
GOOD = ["D victim 100 0 0 1", "D victim 100 0 1 1", "A victim 110 0 0 1", "HOLDING victim",
        "D c0 2000 0 1 2", "A c0 2010 0 1 1"]


def test_a_good_run_passes_and_counts():
    report = check(GOOD, EXPECTED, "victim")
    assert (report.records, report.victim_held, report.redelivered) == (2, 1, 1)
    assert report.accepted_by == {"victim": 1, "c0": 1}


@pytest.mark.parametrize("bad, why", [
    (["D c1 2005 0 1 3", "A c1 2008 0 1 1"], "accepted 2 times"),
    (["D c1 2005 0 1 2"], "acquired twice at once"),
    (["D c1 105 0 0 2"], "delivered again after its ACCEPT"),  # while the victim held it
    (["D c1 3000 0 1 3"], "delivered again after its ACCEPT"),
])
def test_overlaps_and_double_accepts_fail(bad, why):
    with pytest.raises(AssertionError, match=why):
        check(GOOD + bad, EXPECTED, "victim")


def test_a_record_never_delivered_or_left_with_the_victim_fails():
    with pytest.raises(AssertionError, match="never delivered"):
        check(GOOD, EXPECTED | {(1, 0)}, "victim")
    with pytest.raises(AssertionError, match="accepted 0 times"):
        check(GOOD[:4], EXPECTED, "victim")
