"""The ids a client may send back to an operation's event stream (Last-Event-ID)."""

from __future__ import annotations

import re

import pytest

from api.errors import Invalid
from api.operations.stream import EVENT_ID_PATTERN, resume_after


@pytest.mark.parametrize(
    ("sent", "after"),
    [
        (None, -1),
        ("", -1),  # an empty Last-Event-ID is no id (it was a 400)
        ("  ", -1),
        ("end", -1),
        ("0", 0),
        ("41", 41),
        (" 7 ", 7),
    ],
)
def test_ids_this_stream_sends_resume_after_them(sent: str | None, after: int) -> None:
    assert resume_after(sent) == after
    if sent is not None:
        assert re.fullmatch(EVENT_ID_PATTERN, sent), "the document must allow what the stream accepts"


@pytest.mark.parametrize("sent", ["null", "1;pod/c@2024-01-01T00:00:00Z#1", "1e3", "9" * 19])
def test_other_ids_are_400_and_outside_the_documented_pattern(sent: str) -> None:
    with pytest.raises(Invalid):
        resume_after(sent)
    assert not re.fullmatch(EVENT_ID_PATTERN, sent)
