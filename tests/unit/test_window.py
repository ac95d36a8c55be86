"""One rule for whether a cached window can answer a page (service.cache.tags.window_answers),
used by Redis reads and by single-flight fills alike."""

import pytest

from service.cache.tags import window_answers


@pytest.mark.parametrize("found, count, cached, total, offset, before_id, answers", [
    (10, 10, 1000, 5000, 0, None, True),      # a full page
    (3, 10, 3, 3, 0, None, True),             # the window holds every tweet
    (0, 10, 1000, 1000, 2000, None, True),    # past the end, all cached: an empty page is right
    (4, 10, 1000, 5000, 996, None, False),    # runs off the window: PostgreSQL has the rest
    (0, 10, 1000, 5000, 1000, None, False),   # wholly beyond the window
    (5, 10, 1000, 1005, 1000, None, True),    # by offset, the page reaches the last tweet
    (5, 10, 1000, 1005, 0, 77, False),        # by keyset, older tweets may lie beyond the window
    (5, 10, 1005, 1005, 0, 77, True),         # ...unless the window holds them all
])
def test_window_answers(found: int, count: int, cached: int, total: int, offset: int,
                        before_id: int | None, answers: bool) -> None:
    assert window_answers(found, count, cached, total, offset, before_id) is answers
