"""Structured answers: a schema in, a parsed and validated value (``answer.data``) out.

``schema=`` takes three spellings, all normalised to JSON Schema by ``normalize``:

- a pydantic model class (validated by pydantic; ``answer.data`` is an instance);
- a JSON Schema dict (``{"type": "object", "properties": {...}, "required": [...]}``);
- a shorthand: ``{"city": str, "year": int, "tags": [str]}`` (nested dicts are
  objects, ``[T]`` / ``list[T]`` arrays, ``Optional[T]`` / ``T | None`` optional,
  ``Literal["a", "b"]`` or a tuple of strings an enum; type names as strings,
  ``{"city": "str"}``, work too, for JSON written on a command line).

Without pydantic, a small validator of our own checks the subset that matters
for answers: ``type`` (one or a list), ``properties``, ``required``,
``additionalProperties``, ``items``, ``enum``, ``const``, ``anyOf`` / ``oneOf`` /
``allOf`` and local ``$ref``. No jsonschema dependency; pydantic is imported only
when a model class is given (never by this module itself).

The interceptor ``enforce`` (chain order 40) does the work for every attempt
whose ``call.schema`` is set: when the provider does not enforce the schema
natively (``"schema" not in call.features``) it puts the schema into the
system prompt; it buffers the answer, parses JSON (a ```json fence or prose
around the value is tolerated), validates, and on a mismatch asks once more,
showing the model its answer and what was wrong (as history turns). The
``StreamEnd`` it yields carries the parsed value in ``data``; a second mismatch
raises ``ProviderError(kind="schema", retryable=False)`` naming the field.
A structured answer therefore arrives in one piece, not streamed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import types
import typing
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any

from .chain import Handler, Item, chain
from .errors import ProviderError, UsageError
from .models import StreamEnd
from .request import Resolved

__all__ = [
    "ORDER",
    "SchemaMismatch",
    "check",
    "enforce",
    "example_value",
    "instructions",
    "normalize",
    "parse_json",
    "validate",
]

#: Where ``enforce`` sits in the chain: inside usage (0) and the cache (30), outside the backend.
ORDER = 40

#: Keywords that make a dict a JSON Schema (one of them must be present)...
_STRUCTURAL_KEYS = frozenset(
    {"type", "properties", "items", "enum", "const", "anyOf", "oneOf", "allOf", "$ref", "$schema"}
)
#: ...and every key must be a JSON Schema keyword (or an ``x-`` extension); else it is a shorthand.
_JSON_SCHEMA_KEYS = _STRUCTURAL_KEYS | frozenset(
    """required additionalProperties $defs definitions $id title description default examples
    format pattern minLength maxLength minimum maximum exclusiveMinimum exclusiveMaximum multipleOf
    minItems maxItems uniqueItems prefixItems contains minProperties maxProperties
    patternProperties propertyNames dependentRequired not if then else nullable strict
    discriminator readOnly writeOnly deprecated $comment contentMediaType contentEncoding""".split()  # noqa: SIM905
)
_TYPE_NAMES = {
    "str": "string",
    "string": "string",
    "int": "integer",
    "integer": "integer",
    "float": "number",
    "number": "number",
    "bool": "boolean",
    "boolean": "boolean",
    "list": "array",
    "array": "array",
    "dict": "object",
    "object": "object",
    "null": "null",
    "none": "null",
}
_PY_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}

#: Normalised schema digest -> the pydantic model class it came from (bounded, most recent kept).
_MODELS: OrderedDict[str, type] = OrderedDict()
_MODELS_MAX = 256


class SchemaMismatch(Exception):
    """An answer is not JSON, or not of the schema's shape; ``path`` names the field."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.problem = message
        #: Every mismatch found (this one first); the message shows up to ``SHOWN``.
        self.problems: list[SchemaMismatch] = [self]
        if not path:
            text = message
        elif message.startswith("is "):
            text = f"{path!r} {message}"
        else:
            text = f"{path!r}: {message}"
        super().__init__(text)

    SHOWN = 5

    @classmethod
    def combine(cls, problems: list[SchemaMismatch]) -> SchemaMismatch:
        """One mismatch reporting several (so a retry can fix them all at once)."""
        flat = [p for problem in problems for p in problem.problems]
        if len(flat) == 1:
            return flat[0]
        first = flat[0]
        shown = "; ".join(str(p) for p in flat[: cls.SHOWN])
        more = f"; and {len(flat) - cls.SHOWN} more" if len(flat) > cls.SHOWN else ""
        combined = cls(first.path, first.problem)
        combined.problems = flat
        combined.args = (shown + more,)
        return combined

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else self.problem


# --------------------------------------------------------------------------- normalising


def _digest(schema: dict[str, Any]) -> str:
    text = json.dumps(schema, sort_keys=True, default=repr, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _is_pydantic_model(value: Any) -> bool:
    return isinstance(value, type) and (
        hasattr(value, "model_json_schema") or (hasattr(value, "schema") and hasattr(value, "parse_obj"))
    )


def _pydantic_schema(model: type) -> dict[str, Any]:
    if hasattr(model, "model_json_schema"):
        return model.model_json_schema()
    return model.schema()  # pydantic 1


def _is_json_data(value: Any) -> bool:
    if value is None or isinstance(value, (str, int, float, bool)):
        return True
    if isinstance(value, list):
        return all(_is_json_data(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json_data(v) for k, v in value.items())
    return False


def _is_json_schema(value: dict[str, Any]) -> bool:
    """A dict of plain JSON data that uses JSON Schema keywords (else it is a shorthand)."""
    if not _is_json_data(value) or not (_STRUCTURAL_KEYS & value.keys()):
        return False
    if any(k not in _JSON_SCHEMA_KEYS and not k.startswith("x-") for k in value):
        return False
    kind = value.get("type")
    if isinstance(kind, str) and kind not in _TYPE_NAMES.values():
        return False  # {"type": "str", "name": "str"}: a shorthand with a field called type
    props = value.get("properties")
    return props is None or isinstance(props, dict)


def normalize(schema: Any) -> dict[str, Any]:
    """JSON Schema for any accepted spelling of ``schema`` (see the module docstring).

    Raises ``UsageError`` naming the part it cannot read. A pydantic model class
    is remembered, so answers to the schema it produced validate with pydantic.
    """
    if schema is None:
        raise UsageError("schema is None: pass a pydantic model, a JSON Schema dict or a shorthand dict.")
    if _is_pydantic_model(schema):
        result = _pydantic_schema(schema)
        key = _digest(result)
        _MODELS[key] = schema
        _MODELS.move_to_end(key)
        while len(_MODELS) > _MODELS_MAX:
            _MODELS.popitem(last=False)
        return result
    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except ValueError:
            raise UsageError(
                f"schema {schema[:40]!r} is a string but not JSON: pass a dict, e.g. {{'city': str}}."
            ) from None
    if isinstance(schema, dict):
        if _is_json_schema(schema):
            return json.loads(json.dumps(schema))  # a private copy
        defs: dict[str, Any] = {}
        result = _from_shorthand(schema, "", defs)
        if defs:
            result["$defs"] = defs
        return result
    if isinstance(schema, (list, type)) or typing.get_origin(schema) is not None:
        defs = {}
        result = _from_shorthand(schema, "", defs)
        if defs:
            result["$defs"] = defs
        return result
    raise UsageError(
        f"schema must be a pydantic model class, a JSON Schema dict or a shorthand dict, "
        f"not {type(schema).__name__}."
    )


def _optional_inner(hint: Any) -> Any | None:
    """``T`` for ``Optional[T]`` / ``T | None``; None when ``hint`` is not optional."""
    origin = typing.get_origin(hint)
    union_types: tuple[Any, ...] = (typing.Union, types.UnionType)
    if origin in union_types:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) < len(typing.get_args(hint)):
            return args[0] if len(args) == 1 else typing.Union.__getitem__(tuple(args))
    return None


def _from_shorthand(value: Any, path: str, defs: dict[str, Any]) -> dict[str, Any]:
    where = f" at {path!r}" if path else ""
    if isinstance(value, dict):
        properties: dict[str, Any] = {}
        required: list[str] = []
        for key, sub in value.items():
            if not isinstance(key, str):
                raise UsageError(f"schema field names must be strings, not {key!r}{where}.")
            child = f"{path}.{key}" if path else key
            inner = _optional_inner(sub)
            if inner is not None:
                properties[key] = _nullable(_from_shorthand(inner, child, defs))
            else:
                properties[key] = _from_shorthand(sub, child, defs)
                required.append(key)
        return {"type": "object", "properties": properties, "required": required}
    if isinstance(value, list):
        if not value:
            return {"type": "array"}
        if len(value) > 1:
            raise UsageError(f"a list in a schema shorthand holds one type, e.g. [str]{where}.")
        return {"type": "array", "items": _from_shorthand(value[0], f"{path}[]", defs)}
    if isinstance(value, tuple) and value and all(isinstance(v, (str, int, float, bool)) for v in value):
        return {"enum": list(value)}
    if isinstance(value, str):
        name = _TYPE_NAMES.get(value.strip().lower())
        if name is None:
            raise UsageError(
                f"unknown type name {value!r}{where}: use str, int, float, bool, list or dict "
                "(or a tuple of allowed values)."
            )
        return {"type": name}
    if value in _PY_TYPES:
        return {"type": _PY_TYPES[value]}
    if value is list:
        return {"type": "array"}
    if value is dict:
        return {"type": "object"}
    if value is typing.Any or value is object:
        return {}
    if _is_pydantic_model(value):
        sub = dict(_pydantic_schema(value))
        defs.update(sub.pop("$defs", None) or sub.pop("definitions", None) or {})
        return sub
    origin = typing.get_origin(value)
    args = typing.get_args(value)
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (list, set, frozenset, tuple) or (origin is not None and str(origin).endswith("Sequence")):
        items = args[0] if args else typing.Any
        return {"type": "array", "items": _from_shorthand(items, f"{path}[]", defs)}
    if origin is dict:
        return {"type": "object"}
    inner = _optional_inner(value)
    if inner is not None:
        return _nullable(_from_shorthand(inner, path, defs))
    raise UsageError(
        f"cannot turn {value!r}{where} into a schema: use str, int, float, bool, [T], a nested dict, "
        "Optional[T], Literal[...] or a pydantic model."
    )


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    kind = schema.get("type")
    if isinstance(kind, str) and set(schema) <= {"type", "items", "properties", "required"}:
        return {**schema, "type": [kind, "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


# --------------------------------------------------------------------------- validating


def _resolve_ref(ref: str, root: dict[str, Any]) -> dict[str, Any]:
    if not ref.startswith("#/"):
        raise SchemaMismatch("", f"only local $ref are supported, not {ref!r}")
    node: Any = root
    for part in ref[2:].split("/"):
        node = node.get(part.replace("~1", "/").replace("~0", "~")) if isinstance(node, dict) else None
        if node is None:
            raise SchemaMismatch("", f"$ref {ref!r} points nowhere")
    return node


def _type_ok(value: Any, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "null":
        return value is None
    if kind == "array":
        return isinstance(value, list)
    if kind == "object":
        return isinstance(value, dict)
    return True


_ARTICLES = {"string": "a string", "integer": "an integer", "number": "a number", "boolean": "true or false"}
_ARTICLES.update({"null": "null", "array": "a list", "object": "an object"})


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the string {shown!r}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _check(value: Any, schema: Any, root: dict[str, Any], path: str) -> None:
    if schema is True or schema is None or schema == {}:
        return
    if schema is False:
        raise SchemaMismatch(path, "is not allowed here")
    if not isinstance(schema, dict):
        return
    if "$ref" in schema:
        _check(value, _resolve_ref(schema["$ref"], root), root, path)
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if options:
            problems = []
            for option in options:
                try:
                    _check(value, option, root, path)
                    break
                except SchemaMismatch as exc:
                    problems.append(exc)
            else:
                deepest = max(problems, key=lambda p: len(p.path))
                raise deepest
    for option in schema.get("allOf") or ():
        _check(value, option, root, path)
    if "const" in schema and value != schema["const"]:
        raise SchemaMismatch(path, f"expected {json.dumps(schema['const'])}, got {_describe(value)}")
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(json.dumps(v) for v in schema["enum"][:12])
        raise SchemaMismatch(path, f"expected one of {allowed}, got {_describe(value)}")
    kind = schema.get("type")
    if kind is not None:
        kinds = [kind] if isinstance(kind, str) else list(kind)
        if not any(_type_ok(value, k) for k in kinds):
            wanted = " or ".join(_ARTICLES.get(k, k) for k in kinds)
            raise SchemaMismatch(path, f"expected {wanted}, got {_describe(value)}")
    found: list[SchemaMismatch] = []
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        for name in schema.get("required") or ():
            if name not in value:
                found.append(SchemaMismatch(_join(path, name), "is missing (required)"))
        for name, sub in properties.items():
            if name in value:
                _note(found, value[name], sub, root, _join(path, name))
        extra = schema.get("additionalProperties")
        if extra is not None and extra is not True:
            for name in value:
                if name not in properties:
                    if extra is False:
                        found.append(SchemaMismatch(_join(path, name), "is not a field of the schema"))
                    else:
                        _note(found, value[name], extra, root, _join(path, name))
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            _note(found, item, schema["items"], root, _join(path, i))
    if found:
        raise SchemaMismatch.combine(found)


def _note(found: list[SchemaMismatch], value: Any, schema: Any, root: dict[str, Any], path: str) -> None:
    try:
        _check(value, schema, root, path)
    except SchemaMismatch as exc:
        found.append(exc)


def validate(value: Any, schema: dict[str, Any]) -> Any:
    """``value`` checked against the JSON Schema ``schema``; raises ``SchemaMismatch``.

    Returns the value to keep: a pydantic instance when ``schema`` came from a
    pydantic model (which may also coerce, e.g. ``"1999"`` to ``1999``), else
    ``value`` itself.
    """
    model = _MODELS.get(_digest(schema)) if _MODELS else None
    if model is not None:
        return _validate_pydantic(value, model)
    _check(value, schema, schema, "")
    return value


def _validate_pydantic(value: Any, model: type) -> Any:
    try:
        if hasattr(model, "model_validate"):
            return model.model_validate(value)
        return model.parse_obj(value)  # pydantic 1
    except Exception as exc:
        errors = getattr(exc, "errors", None)
        first = (errors() or [{}])[0] if callable(errors) else {}
        loc = first.get("loc") or ()
        path = ""
        for part in loc:
            path = _join(path, part if isinstance(part, int) else str(part))
        message = first.get("msg") or str(exc).splitlines()[0]
        if first.get("type") == "missing":
            message = "is missing (required)"
        elif "input" in first:
            message = f"{message}, got {_describe(first['input'])}"
        raise SchemaMismatch(path, message) from None


# --------------------------------------------------------------------------- parsing

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n(.*?)(?:\n[ \t]*```|$)", re.DOTALL)


def parse_json(text: str) -> Any:
    """The JSON value in an answer: the whole text, a fenced block, or the first value in prose."""
    stripped = text.strip()
    candidates = []
    for match in _FENCE.finditer(stripped):
        if match.group(1).lower() in ("", "json", "json5", "javascript", "js"):
            candidates.append(match.group(2).strip())
    candidates.append(stripped)
    decoder = json.JSONDecoder()
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except ValueError:
            pass
    for candidate in candidates:
        for i, char in enumerate(candidate):
            if char in "{[":
                try:
                    return decoder.raw_decode(candidate, i)[0]
                except ValueError:
                    continue
    shown = stripped if len(stripped) <= 60 else stripped[:57] + "..."
    raise SchemaMismatch("", f"the answer is not JSON: {shown!r}" if shown else "the answer is empty")


def check(text: str, schema: dict[str, Any]) -> Any:
    """Parse ``text`` and validate it against ``schema``: the value to keep, or ``SchemaMismatch``."""
    return validate(parse_json(text), schema)


# --------------------------------------------------------------------------- prompting


def _compact(schema: dict[str, Any]) -> str:
    return json.dumps(schema, separators=(",", ":"), ensure_ascii=False)


def instructions(schema: dict[str, Any]) -> str:
    """What a provider without native structured output is told (appended to the system prompt)."""
    example = json.dumps(example_value(schema), ensure_ascii=False)
    return (
        "Answer with one JSON value and nothing else: no prose, no Markdown code fence. "
        f"It must match this JSON Schema:\n{_compact(schema)}\nFor example (values invented): {example}"
    )


def retry_prompt(problem: SchemaMismatch) -> str:
    return (
        f"That answer does not match the schema: {problem}. "
        "Reply again with only the corrected JSON value, nothing else."
    )


# --------------------------------------------------------------------------- examples

_STRINGS = {
    "name": ("Ada Lovelace", "Alan Turing", "Grace Hopper"),
    "title": ("A Short History of Tea", "Notes on Rivers", "The Quiet Harbour"),
    "city": ("Paris", "Lisbon", "Kyoto"),
    "country": ("France", "Portugal", "Japan"),
    "email": ("ada@example.com", "alan@example.com", "grace@example.com"),
    "url": ("https://example.com", "https://example.org/page", "https://example.net"),
    "date": ("2024-05-17", "2023-11-02", "2025-01-30"),
    "language": ("English", "Portuguese", "Japanese"),
    "color": ("blue", "green", "red"),
    "tag": ("history", "travel", "science"),
    "summary": ("A brief, clear summary.", "Two points stand out.", "Mostly positive overall."),
    "sentiment": ("positive", "neutral", "negative"),
    "category": ("books", "travel", "food"),
    "id": ("a1", "b2", "c3"),
}
_INTEGERS = {"year": (2024, 1999, 2011), "age": (36, 41, 28), "count": (3, 5, 2), "rating": (4, 5, 3)}
_NUMBERS = {"price": (9.99, 24.5, 3.75), "score": (0.87, 0.42, 0.65), "latitude": (48.86, 38.72, 35.01)}
_NUMBERS.update({"longitude": (2.35, -9.14, 135.77), "amount": (12.5, 7.0, 99.9)})


def _pick(table: dict[str, tuple[Any, ...]], name: str, seed: int) -> Any | None:
    low = name.lower()
    for key, values in table.items():
        if low == key or low.rstrip("s") == key or low.endswith("_" + key) or low.startswith(key + "_"):
            return values[seed % len(values)]
    return None


def example_value(schema: Any, seed: int = 0, *, _root: Any = None, _name: str = "", _depth: int = 0) -> Any:
    """A plausible value of the schema's shape (deterministic; ``seed`` picks among variants).

    Strings and numbers are chosen by the field's name where it says something
    (``city`` -> "Paris", ``year`` -> 2024, ``price`` -> 9.99), else generic.
    Accepts any spelling ``normalize`` accepts.
    """
    if _root is None:
        if not (isinstance(schema, dict) and _is_json_schema(schema)) and schema not in ({}, True):
            schema = normalize(schema)
        _root = schema
    if _depth > 12 or not isinstance(schema, dict):
        return None
    if "$ref" in schema:
        try:
            return example_value(
                _resolve_ref(schema["$ref"], _root), seed, _root=_root, _name=_name, _depth=_depth + 1
            )
        except SchemaMismatch:
            return None
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][seed % len(schema["enum"])]
    if "default" in schema and _is_json_data(schema["default"]):
        return schema["default"]
    for key in ("anyOf", "oneOf", "allOf"):
        options = [o for o in schema.get(key) or () if not (isinstance(o, dict) and o.get("type") == "null")]
        if options:
            return example_value(options[0], seed, _root=_root, _name=_name, _depth=_depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if kind == "object":
        props = schema.get("properties") or {}
        return {
            name: example_value(sub, seed, _root=_root, _name=name, _depth=_depth + 1)
            for name, sub in props.items()
        }
    if kind == "array":
        items = schema.get("items") if isinstance(schema.get("items"), dict) else {"type": "string"}
        singular = _name[:-1] if _name.endswith("s") else _name
        size = max(int(schema.get("minItems") or 0), 2)
        if schema.get("maxItems") is not None:
            size = min(size, int(schema["maxItems"]))
        return [
            example_value(items, seed + i, _root=_root, _name=singular, _depth=_depth + 1)
            for i in range(size)
        ]
    if kind == "string":
        fmt = schema.get("format")
        if fmt in ("date", "date-time", "email", "uri", "url"):
            value = {
                "date": "2024-05-17",
                "date-time": "2024-05-17T09:30:00Z",
                "email": "ada@example.com",
            }.get(fmt, "https://example.com")
            return value
        return _pick(_STRINGS, _name, seed) or (f"example {_name}".strip() if _name else "example")
    if kind == "integer":
        value = _pick(_INTEGERS, _name, seed)
        value = 42 + seed if value is None else value
        return _clamp(value, schema)
    if kind == "number":
        value = _pick(_NUMBERS, _name, seed)
        value = 3.5 + seed if value is None else value
        return _clamp(value, schema)
    if kind == "boolean":
        return seed % 2 == 0
    return None


def _clamp(value: Any, schema: dict[str, Any]) -> Any:
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None and value < low:
        value = low
    if high is not None and value > high:
        value = high
    return value


# --------------------------------------------------------------------------- the interceptor


def _with_instructions(call: Resolved, schema: dict[str, Any]) -> Resolved:
    text = instructions(schema)
    system = f"{call.system}\n\n{text}" if call.system else text
    return call.with_changes(system=system)


async def _collect(handler: Handler, call: Resolved) -> tuple[str, StreamEnd | None]:
    parts: list[str] = []
    end: StreamEnd | None = None
    async for item in handler(call):
        if isinstance(item, StreamEnd):
            end = item
        elif isinstance(item, str) and item:  # thinking travels in end.reasoning
            parts.append(item)
    return "".join(parts), end


def _cost_of(end: StreamEnd | None) -> float | None:
    if end is None:
        return None
    return end.cost if end.cost is not None else end.metadata.get("cost")


def _merge(first: StreamEnd | None, second: StreamEnd | None) -> StreamEnd:
    """One end for two attempts: tokens and cost added, the second's other facts kept."""
    base = second or first or StreamEnd()

    def total(name: str) -> int | None:
        values = [getattr(e, name) for e in (first, second) if e is not None and getattr(e, name) is not None]
        return sum(values) if values else None

    costs = [c for c in (_cost_of(first), _cost_of(second)) if c is not None]
    metadata = dict(base.metadata)
    if "cost" in metadata and costs:
        metadata["cost"] = sum(costs)
    return dataclasses.replace(
        base,
        tokens_in=total("tokens_in"),
        tokens_out=total("tokens_out"),
        cost=sum(costs) if base.cost is not None and costs else base.cost,
        metadata=metadata,
    )


def enforce(call: Resolved, proceed: Handler) -> AsyncIterator[Item]:
    """The interceptor. A plain function: calls without a schema pass straight through, at no cost."""
    if call.schema is None:
        return proceed(call)
    return _enforce(call, proceed)


async def _enforce(call: Resolved, proceed: Handler) -> AsyncIterator[Item]:
    schema = call.schema
    assert schema is not None
    first = call if "schema" in call.features else _with_instructions(call, schema)
    text, end = await _collect(proceed, first)
    retries = 0
    try:
        data = check(text, schema)
    except SchemaMismatch as problem:
        retries = 1
        again = first.with_changes(
            history=[
                *first.history,
                {"role": "user", "content": first.prompt},
                {"role": "assistant", "content": text},
            ],
            prompt=retry_prompt(problem),
        )
        text2, end2 = await _collect(proceed, again)
        end = _merge(end, end2)
        try:
            data = check(text2, schema)
        except SchemaMismatch as final:
            error = ProviderError(
                f"The answer does not match the schema, after one retry: {final}.",
                hint="Simplify the schema, show an example in the prompt, or use a model with native "
                "structured output.",
                retryable=False,
                kind="schema",
            )
            error.end = end  # type: ignore[attr-defined]  # usage accounting counts the tokens
            error.text = text2  # type: ignore[attr-defined]
            error.field = final.path  # type: ignore[attr-defined]
            raise error from None
        text = text2
    if text:
        yield text
    final_end = dataclasses.replace(end or StreamEnd(), data=data)
    if retries:
        final_end.metadata = {**final_end.metadata, "schema_retries": retries}
    yield final_end


chain.add("schema", enforce, order=ORDER)
