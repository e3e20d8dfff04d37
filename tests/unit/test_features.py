"""Feature flags (KIP-584): the registry and Kafka's rules for UpdateFeatures."""

from odradek.replication import features
from odradek.replication.features import (
    SAFE_DOWNGRADE,
    UNSAFE_DOWNGRADE,
    UPGRADE,
    Feature,
    check_update,
)
from odradek.replication.metadata import FeatureLevelRecord, MetadataImage

MV = "metadata.version"


def test_only_implemented_features_are_advertised_and_bootstrapped():
    assert [f.name for f in features.supported()] == [MV, "transaction.version", "group.version",
                                                       "share.version"]
    # KIP-890 part 2 (transactions v2), KIP-848 and KIP-932 (share groups, level 1; level 2
    # is KIP-1191's dead-letter queues) are served
    assert features.bootstrap_levels() == {MV: 29, "transaction.version": 2, "group.version": 1,
                                           "share.version": 1}
    assert features.FEATURES["share.version"].max_level == 1


def test_updates_follow_kafkas_rules_and_words():
    def check(name, level, kind=UPGRADE, current=29):
        return check_update(name, level, kind, current, {MV: 29, name: level}, 1)
    assert check(MV, 29) is None  # the level it has: accepted, changes nothing
    assert check("group.version", 0, SAFE_DOWNGRADE, current=0) is None  # disabling what is off
    assert check("foo.bar", 1) == ("Invalid update version 1 for feature foo.bar. "
                                   "Local controller 1 does not support this feature.")
    assert check("share.version", 2).endswith("only supports versions 0-1")
    assert check("streams.version", 1).endswith("does not support this feature.")
    assert check(MV, 33) == ("Invalid update version 33 for feature metadata.version. "
                             "Local controller 1 only supports versions 7-29")
    assert check(MV, 21).endswith("Can't downgrade the version of this feature without setting "
                                  "the upgrade type to either safe or unsafe downgrade.")
    assert check(MV, 21, SAFE_DOWNGRADE) == (
        "Unsupported metadata.version downgrade from 29 to 21. Refusing to perform the requested "
        "downgrade because it might delete metadata information.")
    assert check(MV, 21, UNSAFE_DOWNGRADE).endswith("Unsafe metadata downgrade is not supported in this version.")
    assert check(MV, -1).endswith("The upper value for the new range cannot be less than 0.")


def test_a_dependency_is_checked_against_the_levels_the_request_leaves(monkeypatch):
    monkeypatch.setitem(features.FEATURES, "x.version", Feature("x.version", 0, 2, requires=((2, MV, 30),)))
    assert check_update("x.version", 1, UPGRADE, 0, {MV: 29, "x.version": 1}, 1) is None
    assert check_update("x.version", 2, UPGRADE, 0, {MV: 29, "x.version": 2}, 1) == (
        "Invalid update version 2 for feature x.version. x.version 2 requires metadata.version at least 30.")


def test_finalized_levels_replay_and_snapshot():
    image = MetadataImage()
    image.apply(FeatureLevelRecord(MV, 29))
    image.apply(FeatureLevelRecord("x.version", 1))
    image.apply(FeatureLevelRecord("x.version", 0))
    assert image.features == {MV: 29}
    copy = MetadataImage()
    copy.reset(image.to_records(), 5)
    assert copy.features == {MV: 29}


def test_invalid_update_version_is_kafkas_code():
    """It was 108 (NEW_LEADER_ELECTED's): Kafka 4.4's Errors say 95, which the oracle saw."""
    from odradek.protocol.errors import ErrorCode
    assert ErrorCode.INVALID_UPDATE_VERSION == 95
