"""Feature flags (KIP-584): the versions of each feature this node supports, and the rules
for changing a finalized level (UpdateFeatures), as Kafka's FeatureControlManager has them.

``FEATURES`` is the one table: a feature becomes advertised (ApiVersions'
supported_features) once its ``max_level`` is above 0, and is finalized at
``bootstrap_level`` when a cluster forms (a ``FeatureLevelRecord`` in the metadata log).
A helper that completes the protocol a feature gates raises its ``max_level`` here (and
its ``bootstrap_level`` if new clusters should start with it), with ``requires`` naming
the levels of other features it needs: nothing else changes.

metadata.version stops at 4.2-IV1 (level 29): the next level, 4.3-IV0, brings cordoned
log directories (DescribeLogDirs v5), which Odradek does not have. Every client API the
levels up to it imply is served. Its downgrades are refused, safe or unsafe, as in
Kafka 4.4.
"""

from dataclasses import dataclass, field

METADATA_VERSION = "metadata.version"
# UpgradeType of UpdateFeatures v1+ (v0's allow_downgrade maps to SAFE_DOWNGRADE)
UPGRADE, SAFE_DOWNGRADE, UNSAFE_DOWNGRADE = 1, 2, 3
MINIMUM_METADATA_VERSION = 7  # 3.3-IV3, the oldest Kafka 4 knows


@dataclass(frozen=True, slots=True)
class Feature:
    name: str
    min_level: int  # the lowest level this node supports (0: the feature may be off)
    max_level: int  # the highest; 0: not implemented, not advertised
    bootstrap_level: int = 0  # finalized when a cluster forms
    # (from level, other feature, its lowest level): e.g. (2, "metadata.version", 22)
    requires: tuple[tuple[int, str, int], ...] = field(default=())


FEATURES: dict[str, Feature] = {f.name: f for f in (
    Feature(METADATA_VERSION, MINIMUM_METADATA_VERSION, 29, bootstrap_level=29),
    Feature("kraft.version", 0, 0),  # KIP-853 voter changes: not built
    # 1: flexible __transaction_state records; 2: transactions v2 (KIP-890 part 2)
    Feature("transaction.version", 0, 2, bootstrap_level=2),
    Feature("group.version", 0, 1, bootstrap_level=1),  # the consumer group protocol (KIP-848)
    Feature("share.version", 0, 1, bootstrap_level=1),  # share groups (KIP-932)
    Feature("streams.version", 0, 0),
    Feature("eligible.leader.replicas.version", 0, 0),
)}


def supported() -> list[Feature]:
    """What ApiVersions advertises: the features implemented at some level above 0."""
    return [f for f in FEATURES.values() if f.max_level > 0]


def bootstrap_levels() -> dict[str, int]:
    return {f.name: f.bootstrap_level for f in FEATURES.values() if f.bootstrap_level > 0}


def check_update(name: str, level: int, upgrade_type: int, current: int, after: dict[str, int],
                 controller_id: int | None) -> str | None:
    """Why the finalized level of ``name`` may not go from ``current`` to ``level`` (Kafka's
    words), or None. ``after`` holds every level the whole request would leave."""
    invalid = f"Invalid update version {level} for feature {name}."
    if level < 0:
        return f"{invalid} The upper value for the new range cannot be less than 0."
    feature = FEATURES.get(name)
    if feature is None or (feature.max_level == 0 and level > 0):
        return f"{invalid} Local controller {controller_id} does not support this feature."
    if not feature.min_level <= level <= feature.max_level:
        return (f"{invalid} Local controller {controller_id} only supports versions "
                f"{feature.min_level}-{feature.max_level}")
    if level < current and upgrade_type == UPGRADE:
        return (f"{invalid} Can't downgrade the version of this feature without setting the "
                "upgrade type to either safe or unsafe downgrade.")
    if name == METADATA_VERSION and level < current:
        if upgrade_type == UNSAFE_DOWNGRADE:
            return (f"Unsupported metadata.version downgrade from {current} to {level}. "
                    "Unsafe metadata downgrade is not supported in this version.")
        return (f"Unsupported metadata.version downgrade from {current} to {level}. Refusing to "
                "perform the requested downgrade because it might delete metadata information.")
    for at_level, other, needed in feature.requires:
        if level >= at_level and after.get(other, 0) < needed:
            return f"{invalid} {name} {level} requires {other} at least {needed}."
    return None
