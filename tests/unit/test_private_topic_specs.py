"""A test's or a benchmark's private topics (services.common.topics.private_specs) are copies of the
platform's topics under names of their own: the same configs, partitions capped where asked."""

from __future__ import annotations

from services.common.topics import TOPICS, private_specs


def test_every_platform_topic_is_copied_under_a_private_name() -> None:
    specs = private_specs("e2e", "abc", max_partitions=2)
    assert list(specs) == ["frames", "faces", "matches", "alerts", "dlq", "audit"]
    for original in TOPICS:
        role = original.name.split(".")[1]
        copy = specs[role]
        assert copy.name == f"lfr.e2e.abc.{role}.v1"
        assert copy.partitions == min(original.partitions, 2)
        assert copy.configs() == original.configs()


def test_only_the_roles_asked_for_and_uncapped_by_default() -> None:
    specs = private_specs("bench", "x1", ("faces", "dlq"))
    assert {r: (s.name, s.partitions) for r, s in specs.items()} == {
        "faces": ("lfr.bench.x1.faces.v1", 6), "dlq": ("lfr.bench.x1.dlq.v1", 1)}
