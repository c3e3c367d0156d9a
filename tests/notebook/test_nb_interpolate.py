"""Interpolation: placeholders that resolve are filled, every other brace survives untouched."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ttt_magic.notebook.interpolate import interpolate, parse_field, resolve_field, to_text


class Point:
    def __init__(self) -> None:
        self.x = 3
        self.label = "origin"

    @property
    def broken(self) -> int:
        raise RuntimeError("boom")


NS = {
    "name": "Ada",
    "n": 42,
    "p": Point(),
    "cfg": {"model": "gpt", "key": "value", 0: "zero"},
    "rows": [Point(), {"a": 1}],
    "In": ["", "x = 1", "print(x)", "df.head()"],
    "Out": {3: "the head"},
    "_": "last result",
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hi {name}", "hi Ada"),
        ("{n}+{n}", "42+42"),
        ("{p.x} {p.label}", "3 origin"),
        ("{cfg['model']} {cfg[\"model\"]} {cfg[key]} {cfg[0]}", "gpt gpt value zero"),
        ("{rows[0].x} {rows[1][a]} {rows[-1][a]}", "3 1 1"),
        ("{In[3]} -> {Out[3]}", "df.head() -> the head"),
        ("{_}", "last result"),
        ("file_{name}.csv", "file_Ada.csv"),
        ('f"{n:.2f} {n!r}"', 'f"42.00 42"'),
    ],
)
def test_fields_that_resolve_are_filled(text: str, expected: str) -> None:
    assert interpolate(text, NS) == expected


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "x", "n": 1}',
        "{k: v for k, v in d.items()}",
        "const {name, n} = props",
        "\\frac{n}{name}",
        "x^{n} + a_{n} + \\sum_{n}",
        "{{name}}",
        "{{ n }}",
        "{undefined} {name.missing} {cfg['nope']} {rows[9]} {p.broken} {p.__class__}",
        "{name",
        "name}",
        "}{",
        "{}",
        "{ name }",
        '{cfg["a\'b"]}',
        "{n[0]}",
    ],
)
def test_literal_braces_survive(text: str) -> None:
    assert interpolate(text, NS) == text


class Shape:
    shape = (12345, 3)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{pi:.2f}", "3.14"),
        ("{name!r}", "'Ada'"),
        ("{name!s:>5}", "  Ada"),
        ("{name!a}", "'Ada'"),
        ("{df.shape[0]:,}", "12,345"),
        ("{n:05d}|{n:x}|{n:}", "00042|2a|42"),
        ("{cfg['model']!r:>7}", "  'gpt'"),
        ("{rows[1][a]:+d}", "+1"),
    ],
)
def test_conversions_and_format_specs_apply_like_fstrings(text: str, expected: str) -> None:
    assert interpolate(text, {**NS, "pi": 3.14159, "df": Shape()}) == expected


@pytest.mark.parametrize(
    "text",
    [
        "{name:.2f}",  # a spec the value rejects
        "{n:abc}",
        "{name!x}",  # not a conversion
        "{name!rr}",
        "{name!}",
        "{missing:.2f} {missing!r}",  # does not resolve
        "{n !r}",
        "{p.broken!r}",
        "{name: value}",  # a dict-like literal whose key happens to be a variable
        "{n:999999999} {n:.100000000f}",  # would build a gigabyte before truncation
    ],
)
def test_specs_that_fail_or_fields_that_do_not_resolve_stay_as_written(text: str) -> None:
    assert interpolate(text, NS) == text


def test_a_failing_repr_or_format_leaves_the_field_literal() -> None:
    class Touchy:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

        def __format__(self, spec: str) -> str:
            raise RuntimeError("no format")

    assert interpolate("{t!r} {t:>3}", {"t": Touchy()}) == "{t!r} {t:>3}"


def test_colons_and_bangs_inside_brackets_belong_to_the_key() -> None:
    ns = {"d": {"a:b": 1.5, "c!d": "x"}}
    assert interpolate("{d['a:b']:.1f} {d['c!d']!r}", ns) == "1.5 'x'"


SENTINEL = "sk-test-SENTINEL-0123456789abcdef"


def test_secrets_in_values_are_withheld_and_counted() -> None:
    from ttt_magic.notebook.interpolate import expand
    from ttt_magic.secrets import mask

    ns = {"env": {"OPENAI_API_KEY": SENTINEL}, "plain": "nothing here", "key": SENTINEL}
    result = expand("{env} / {plain} / {key!r} / {key:>40}", ns, secrets=[SENTINEL])
    assert SENTINEL not in result.text
    assert result.text.count(mask(SENTINEL)) == 3
    assert result.withheld == 3
    assert "nothing here" in result.text
    assert expand("{plain}", ns, secrets=[SENTINEL]).withheld == 0


def test_a_secret_is_withheld_before_truncation_cuts_it() -> None:
    ns = {"blob": "x" * 95 + SENTINEL}
    out = interpolate("{blob}", ns, limit=100, secrets=[SENTINEL])
    assert out.startswith("x" * 95 + "sk-…")
    assert "sk-test" not in out  # no partial key survives the cut


def test_what_the_user_typed_is_not_rewritten() -> None:
    assert interpolate(f"my key is {SENTINEL}", {}, secrets=[SENTINEL]) == f"my key is {SENTINEL}"


def test_nested_group_inner_field_still_fills() -> None:
    assert interpolate('{"user": {name}}', NS) == '{"user": Ada}'


def test_mixed_text_fills_only_what_resolves() -> None:
    text = "Use {name} in ```js\nconst {a} = {b: 1};\n``` with {{raw}} and {n}"
    assert interpolate(text, NS) == "Use Ada in ```js\nconst {a} = {b: 1};\n``` with {{raw}} and 42"


def test_long_values_are_truncated_with_a_visible_note() -> None:
    out = interpolate("<{big}>", {"big": "x" * 150}, limit=100)
    assert out == "<" + "x" * 100 + "… [truncated 50 chars]>"


def test_no_eval_ever() -> None:
    called = []

    class Trap:
        def __call__(self) -> None:
            called.append(1)

    ns = {"trap": Trap(), "__import__": __import__}
    for text in ["{trap()}", "{__import__('os').getcwd()}", "{trap.__call__}", "{1+1}"]:
        assert interpolate(text, ns) == text
    assert not called


def test_parse_field_grammar() -> None:
    assert parse_field("a.b[0]['c'][d]") == [
        ("name", "a"),
        ("attr", "b"),
        ("item", 0),
        ("item", "c"),
        ("item", "d"),
    ]
    for bad in ["", "1a", "a.", "a[", "a[]", "a.b c", "a[0", "a()", "a.__dict__", "a[1.5]"]:
        assert parse_field(bad) is None, bad


def test_resolve_field_reports_unresolved() -> None:
    from ttt_magic.notebook.interpolate import Unresolved

    with pytest.raises(Unresolved):
        resolve_field("nope", NS)
    assert resolve_field("p.x", NS) == 3


def test_dataframe_interpolates_as_a_compact_table() -> None:
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"city": ["Oslo", "Lima"], "temp": [3.5, 19.0]})
    out = interpolate("Data:\n{df}\nShape {df.shape}", {"df": df})
    assert "Oslo" in out and "Lima" in out and "temp" in out
    assert "Shape (2, 2)" in out
    big = pd.DataFrame({"v": range(1000)})
    text = to_text(big, limit=100_000)
    assert len(text.splitlines()) < 40  # max_rows keeps it compact
    assert "999" in text
    series = to_text(df["temp"])
    assert "19.0" in series


# ---------------------------------------------------------------- properties

ALPHABET = string.ascii_letters.replace("z", "") + string.digits + "{}[]().'\"_ \\^:,$\n-"


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=ALPHABET, max_size=80))
def test_unresolvable_text_survives_byte_for_byte(text: str) -> None:
    # No name in the namespace can be spelt with this alphabet (no "z"), so nothing resolves.
    ns = {"zed": "VALUE", "zz": {"a": 1}}
    assert interpolate(text, ns) == text
    assert interpolate(text, {}) == text


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=60), st.text(max_size=60))
def test_arbitrary_text_never_raises_and_known_fields_fill(before: str, after: str) -> None:
    text = before + "{zname}" + after
    out = interpolate(text, {"zname": "Z"})
    assert isinstance(out, str)
    # Where the placeholder stands alone (no brace trickery around it), it is filled.
    if not any(c in before + after for c in "{}\\^_"):
        assert out == before + "Z" + after
