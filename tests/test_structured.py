"""Structured answers: schema spellings, validation, JSON parsing, the retry-once interceptor, examples."""

from __future__ import annotations

import asyncio
import json
from typing import Literal

import pytest

from ttt_magic import structured
from ttt_magic.backends import BaseBackend
from ttt_magic.chain import chain
from ttt_magic.errors import ProviderError, UsageError
from ttt_magic.models import AIResponse, StreamEnd
from ttt_magic.registry import backend_registry
from ttt_magic.request import Resolved
from ttt_magic.structured import SchemaMismatch, check, example_value, normalize, parse_json, validate

CITY = {"city": str, "year": int, "tags": [str]}


# ----------------------------------------------------------------------------- normalising


def test_shorthand_becomes_json_schema():
    assert normalize(CITY) == {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "year": {"type": "integer"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["city", "year", "tags"],
    }


def test_shorthand_optional_literal_enum_nested_and_type_names():
    schema = normalize(
        {
            "score": float,
            "note": str | None,
            "mood": Literal["happy", "sad"],
            "size": ("S", "M", "L"),
            "where": {"lat": float, "lon": "float"},
            "words": list[str],
            "ok": "bool",
            "maybe": int | None,
        }
    )
    props = schema["properties"]
    assert props["note"] == {"type": ["string", "null"]} and "note" not in schema["required"]
    assert props["maybe"] == {"type": ["integer", "null"]} and "maybe" not in schema["required"]
    assert props["mood"] == {"enum": ["happy", "sad"]} and props["size"] == {"enum": ["S", "M", "L"]}
    assert props["where"]["properties"]["lon"] == {"type": "number"}
    assert props["words"] == {"type": "array", "items": {"type": "string"}}
    assert props["ok"] == {"type": "boolean"}


def test_a_json_schema_dict_is_kept_and_copied():
    given = {"type": "object", "properties": {"a": {"type": "integer", "minimum": 0}}, "required": ["a"]}
    out = normalize(given)
    assert out == given and out is not given
    # A shorthand whose field is called "type" is still a shorthand.
    assert normalize({"type": "str", "name": "str"})["properties"]["type"] == {"type": "string"}
    assert normalize('{"city": "str"}')["properties"]["city"] == {"type": "string"}


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"a": [str, int]}, "one type"),
        ({"a": "text"}, "unknown type name"),
        ({"a": complex}, "cannot turn"),
        (3, "must be a pydantic model"),
        ("not json", "not JSON"),
    ],
)
def test_unreadable_schemas_are_usage_errors(bad, message):
    with pytest.raises(UsageError, match=message):
        normalize(bad)


def test_a_pydantic_model_validates_with_pydantic():
    import pydantic

    class City(pydantic.BaseModel):
        city: str
        year: int

    schema = normalize(City)
    assert schema["properties"]["year"]["type"] == "integer"
    value = check('{"city": "Paris", "year": "1889"}', schema)  # pydantic coerces
    assert isinstance(value, City) and value.year == 1889
    with pytest.raises(SchemaMismatch) as caught:
        check('{"city": "Paris"}', schema)
    assert caught.value.path == "year" and "missing" in str(caught.value)


# ----------------------------------------------------------------------------- validating


@pytest.mark.parametrize(
    ("value", "path", "fragment"),
    [
        ({"city": "Paris", "tags": []}, "year", "is missing"),
        ({"city": "Paris", "year": "1999", "tags": []}, "year", "expected an integer, got the string '1999'"),
        ({"city": "Paris", "year": 1999, "tags": ["a", 2]}, "tags[1]", "expected a string, got the number 2"),
        ({"city": None, "year": 1, "tags": []}, "city", "got null"),
        ([1], "", "expected an object, got a list"),
    ],
)
def test_mismatches_name_the_field(value, path, fragment):
    with pytest.raises(SchemaMismatch) as caught:
        validate(value, normalize(CITY))
    assert caught.value.path == path and fragment in str(caught.value)


def test_every_mismatch_is_reported_at_once():
    with pytest.raises(SchemaMismatch) as caught:
        validate({"year": "x", "tags": [1, "b", 3]}, normalize(CITY))
    paths = [p.path for p in caught.value.problems]
    assert paths == ["city", "year", "tags[0]", "tags[2]"]
    assert caught.value.path == "city" and "'tags[2]': expected a string" in str(caught.value)


def test_the_validator_subset():
    schema = {
        "type": "object",
        "properties": {
            "kind": {"enum": ["a", "b"]},
            "n": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
            "child": {"$ref": "#/$defs/Child"},
        },
        "required": ["kind"],
        "additionalProperties": False,
        "$defs": {"Child": {"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]}},
    }
    assert validate({"kind": "a", "n": None, "child": {"x": 1.5}}, schema)
    assert validate({"kind": "b", "n": 3.0}, schema)  # an integral float is an integer
    for value, path in [
        ({"kind": "c"}, "kind"),
        ({"kind": "a", "n": "x"}, "n"),
        ({"kind": "a", "child": {}}, "child.x"),
        ({"kind": "a", "extra": 1}, "extra"),
        ({"kind": "a", "n": True}, "n"),
    ]:
        with pytest.raises(SchemaMismatch) as caught:
            validate(value, schema)
        assert caught.value.path == path, (value, str(caught.value))


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1}',
        '```json\n{"a": 1}\n```',
        '```\n{"a": 1}\n```',
        'Here you are:\n```json\n{"a": 1}\n```\nAnything else?',
        'Sure! {"a": 1} Hope that helps.',
        '  {"a": 1}\n',
    ],
)
def test_json_is_found_in_fences_and_prose(text):
    assert parse_json(text) == {"a": 1}


def test_not_json_is_a_mismatch():
    with pytest.raises(SchemaMismatch, match="not JSON"):
        parse_json("I cannot answer that.")
    with pytest.raises(SchemaMismatch, match="empty"):
        parse_json("   ")


# ----------------------------------------------------------------------------- examples


@pytest.mark.parametrize(
    "schema",
    [
        CITY,
        {"name": str, "email": str, "age": int, "price": float, "ok": bool, "when": {"date": str}},
        {"type": "array", "items": {"type": "object", "properties": {"id": {"type": "integer"}}}},
        {"mood": Literal["up", "down"], "note": str | None, "n": {"type": "integer"}},
        {"type": "object", "properties": {"n": {"type": "integer", "minimum": 100, "maximum": 200}}},
    ],
)
@pytest.mark.parametrize("seed", [0, 1, 5])
def test_example_values_match_their_schema(schema, seed):
    json_schema = normalize(schema)
    value = example_value(json_schema, seed)
    validate(value, json_schema)
    json.dumps(value)


def test_example_values_read_the_field_names():
    value = example_value(CITY)
    assert value == {"city": "Paris", "year": 2024, "tags": ["history", "travel"]}
    assert example_value(CITY, seed=1)["city"] == "Lisbon"


def test_instructions_carry_the_schema_and_an_example():
    text = structured.instructions(normalize(CITY))
    assert '"required":["city","year","tags"]' in text and '"city": "Paris"' in text


# ----------------------------------------------------------------------------- the interceptor


def _call(**changes) -> Resolved:
    base = Resolved(backend="fake", model="m", prompt="Where?", schema=normalize(CITY), system="Be brief.")
    return base.with_changes(**changes)


class Scripted:
    """A ``proceed`` answering each call with the next scripted text; remembers the calls."""

    def __init__(self, *texts: str, tokens: int = 10) -> None:
        self.texts = list(texts)
        self.calls: list[Resolved] = []
        self.tokens = tokens

    def __call__(self, call: Resolved):
        self.calls.append(call)
        text = self.texts.pop(0)

        async def gen():
            yield text
            yield StreamEnd(model="m", tokens_in=self.tokens, tokens_out=self.tokens, cost=0.5)

        return gen()


def _drain(agen):
    async def main():
        return [item async for item in agen]

    return asyncio.run(main())


def test_calls_without_a_schema_pass_straight_through():
    sentinel = object()
    assert structured.enforce(_call(schema=None), lambda call: sentinel) is sentinel
    assert "schema" in chain.names()
    assert chain._links["schema"][0] == structured.ORDER == 40


def test_a_valid_answer_sets_data_and_instructions_go_into_the_system_prompt():
    proceed = Scripted('```json\n{"city": "Paris", "year": 1889, "tags": ["tower"]}\n```')
    items = _drain(structured.enforce(_call(), proceed))
    assert items[0].startswith("```json") and isinstance(items[-1], StreamEnd)
    assert items[-1].data == {"city": "Paris", "year": 1889, "tags": ["tower"]}
    sent = proceed.calls[0]
    assert sent.system.startswith("Be brief.\n\nAnswer with one JSON value")
    assert '"required":["city","year","tags"]' in sent.system


def test_a_provider_that_enforces_the_schema_gets_no_instructions():
    proceed = Scripted('{"city": "Paris", "year": 1889, "tags": []}')
    _drain(structured.enforce(_call(features=frozenset({"schema"})), proceed))
    assert proceed.calls[0].system == "Be brief."


def test_a_mismatch_is_retried_once_showing_the_model_its_error():
    proceed = Scripted('{"city": "Paris", "year": "1889"}', '{"city": "Paris", "year": 1889, "tags": []}')
    items = _drain(structured.enforce(_call(history=[{"role": "user", "content": "hi"}]), proceed))
    end = items[-1]
    assert end.data == {"city": "Paris", "year": 1889, "tags": []}
    assert end.tokens_in == 20 and end.tokens_out == 20 and end.cost == 1.0  # both attempts counted
    assert end.metadata["schema_retries"] == 1
    retry = proceed.calls[1]
    assert retry.history[0] == {"role": "user", "content": "hi"}
    assert retry.history[1:] == [
        {"role": "user", "content": "Where?"},
        {"role": "assistant", "content": '{"city": "Paris", "year": "1889"}'},
    ]
    assert "'year': expected an integer" in retry.prompt and "'tags' is missing" in retry.prompt
    assert retry.system == proceed.calls[0].system


def test_a_second_mismatch_fails_naming_the_field():
    proceed = Scripted('{"city": "Paris"}', '{"city": "Paris", "year": "soon", "tags": []}')
    with pytest.raises(ProviderError) as caught:
        _drain(structured.enforce(_call(), proceed))
    error = caught.value
    assert error.kind == "schema" and error.retryable is False
    assert "'year'" in str(error) and error.field == "year"
    assert error.end.tokens_in == 20  # what the two attempts used is still counted
    assert len(proceed.calls) == 2


class JsonBackend(BaseBackend):
    """Answers from a script; a plugin written against the seed's interface."""

    backend_name = "jsonish"
    script: list = []
    seen: list = []

    async def ask(self, prompt, *, system=None, **kwargs):
        type(self).seen.append({"prompt": prompt, "system": system, "history": kwargs.get("history")})
        return AIResponse(type(self).script.pop(0), tokens_in=5, tokens_out=5)


@pytest.fixture
def jsonish():
    JsonBackend.script, JsonBackend.seen = [], []
    backend_registry.register_backend("jsonish", JsonBackend)
    yield JsonBackend
    backend_registry.unregister("jsonish")


def test_ask_with_a_schema_end_to_end(jsonish):
    from ttt_magic import ask

    jsonish.script = ['Sure: {"city": "Paris", "year": "x"}', '{"city": "Paris", "year": 1889, "tags": []}']
    answer = ask("Where is the tower?", backend="jsonish", schema=CITY)
    assert answer.succeeded, answer.error
    assert answer.data == {"city": "Paris", "year": 1889, "tags": []}
    assert "JSON Schema" in jsonish.seen[0]["system"] and len(jsonish.seen) == 2


def test_ask_many_with_a_schema_fills_data_and_frames(jsonish):
    import pandas as pd

    from ttt_magic.batch import ask_many

    jsonish.script = [json.dumps({"city": c, "year": y, "tags": []}) for c, y in [("Paris", 1), ("Rome", 2)]]
    df = pd.DataFrame({"q": ["a", "b"]}, index=["x", "y"])
    answers = ask_many(df, "Where: {q}", backend="jsonish", schema=CITY, concurrency=1)
    assert [d["city"] for d in answers.data] == ["Paris", "Rome"]
    joined = df.join(answers.to_frame())
    assert list(joined.columns) == ["q", "city", "year", "tags", "error"]
    assert joined.loc["y", "year"] == 2


def test_a_schema_failure_in_a_batch_is_one_failed_item(jsonish):
    from ttt_magic.batch import ask_many

    jsonish.script = ["nope", "still nope", '{"city": "Rome", "year": 2, "tags": []}']
    answers = ask_many(["a", "b"], "Q {}", backend="jsonish", schema=CITY, concurrency=1)
    assert answers.failed == [0] and "does not match the schema" in answers[0].error
    assert answers.data[1]["city"] == "Rome"
