"""The fast lane (`pytest -m "not slow"`, docs/development.md): tests that take longer than the guide are
marked slow, by hand or through a heavy fixture, and an unmarked one over the bound fails."""

import conftest


class _Item:
    """The part of a pytest item the check reads."""

    def __init__(self, slow: bool):
        self.slow = slow

    def get_closest_marker(self, name):
        return object() if self.slow and name == "slow" else None


def test_an_unmarked_test_over_the_bound_fails_and_a_marked_one_does_not(monkeypatch):
    monkeypatch.setattr(conftest, "UNMARKED_BOUND_S", 15.0)
    assert conftest.too_slow_unmarked(_Item(slow=False), 16.0)
    assert not conftest.too_slow_unmarked(_Item(slow=False), 14.0)
    assert not conftest.too_slow_unmarked(_Item(slow=True), 600.0)
    monkeypatch.setattr(conftest, "UNMARKED_BOUND_S", 0.0)  # CSE_UNMARKED_BOUND_S=0: the check is off
    assert not conftest.too_slow_unmarked(_Item(slow=False), 600.0)


def test_every_test_that_uses_a_heavy_fixture_is_in_the_slow_lane(request):
    items = request.session.items
    heavy = [i for i in items if conftest.HEAVY_FIXTURES & set(i.fixturenames)]
    # the whole suite has heavy tests; this file run alone, or the fast lane (which deselects them), has none
    assert heavy or len(items) < 100 or "not slow" in (request.config.getoption("markexpr") or "")
    assert all(i.get_closest_marker("slow") for i in heavy)
