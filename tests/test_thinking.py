"""``<think>`` blocks split out of streamed content, under every chunking."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ttt_magic.models import Thinking
from ttt_magic.thinking import ThinkSplitter, split


def _chunked(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts})
    pieces, last = [], 0
    for point in points:
        pieces.append(text[last:point])
        last = point
    pieces.append(text[last:])
    return pieces


CASES = [
    ("<think>Let me see.</think>\nThe answer is 4.", "The answer is 4.", "Let me see."),
    ("  <thinking>plan\nsteps</thinking>Done.", "Done.", "plan\nsteps"),
    ("No thinking here <think>x</think>", "No thinking here <think>x</think>", ""),
    ("<thin", "<thin", ""),
    ("<think>never closed", "", "never closed"),
    ("<b>bold</b> answer", "<b>bold</b> answer", ""),
    ("", "", ""),
]


def test_whole_contents_split_as_expected():
    for content, answer, thinking in CASES:
        assert split([content]) == (answer, thinking), content


@settings(max_examples=300, deadline=None)
@given(case=st.sampled_from(CASES), cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=12))
def test_every_chunking_gives_the_same_split(case, cuts):
    content, answer, thinking = case
    assert split(_chunked(content, cuts)) == (answer, thinking)


@settings(max_examples=200, deadline=None)
@given(
    thought=st.text(alphabet=st.characters(blacklist_characters="<>"), max_size=40),
    body=st.text(max_size=40),
    cuts=st.lists(st.integers(min_value=0, max_value=120), max_size=10),
)
def test_any_thought_and_answer_round_trip(thought, body, cuts):
    content = f"<think>{thought}</think>{body}"
    answer, thinking = split(_chunked(content, cuts))
    assert thinking == thought and answer == body.lstrip("\n")


def test_thinking_is_released_as_it_streams_not_at_the_end():
    splitter = ThinkSplitter()
    first = splitter.feed("<think>step one, ")
    assert first == [Thinking("step one, ")]
    assert splitter.feed("step two</th") == [Thinking("step two")]  # "</th" held: it may be the tag
    assert splitter.feed("ink>Answer") == ["Answer"]
    assert splitter.feed(" more") == [" more"]
