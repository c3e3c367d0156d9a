"""A fake Ollama server: ``POST /api/chat`` (NDJSON stream or one JSON), ``/api/tags``, ``/api/version``.

Lines look like the real server's: ``{"model", "created_at", "message":
{"role": "assistant", "content"}, "done": false}``, then a last line with
``done: true``, ``done_reason``, durations, ``prompt_eval_count`` and
``eval_count``. Unknown models get 404 ``{"error": "model \\"x\\" not found,
try pulling it first"}``; a failure after the 200 status is a line
``{"error": "..."}``. The official ``ollama`` SDK reads it (see test_ollama.py).

Script with ``fake.answer``, ``fake.usage`` (prompt_eval_count/eval_count),
``fake.installed`` (names as ``/api/tags`` lists them) and
``fake.fail_next(kind, ...)``.
"""

from __future__ import annotations

import json
from typing import Any

from .server import FakeServer, Recorded, Reply

__all__ = ["OllamaFake"]

FAULTS = ("status", "reset", "close", "stall", "malformed", "truncated", "error_line", "drip", "large")
CREATED = "2025-01-01T12:00:00.000000Z"


class OllamaFake(FakeServer):
    """See the module docstring."""

    def __init__(self, *, installed: tuple[str, ...] = ("llama3.2:latest", "qwen2.5:0.5b")) -> None:
        super().__init__()
        self.installed = list(installed)
        self.answer: list[str] = ["The", " sky", " is", " blue", "."]
        self.usage = {"prompt_eval_count": 26, "eval_count": 5}
        self.done_reason = "stop"
        #: Thinking sent in ``message.thinking`` before the answer when the request has ``think``.
        self.thinking: list[str] = ["Blue light ", "scatters most."]
        self._faults: list[dict[str, Any]] = []
        self.route("POST", "/api/chat", self._chat)
        self.route("GET", "/api/tags", self._tags)
        self.route("GET", "/api/version", Reply(body={"version": "0.6.5"}))

    @property
    def text(self) -> str:
        return "".join(self.answer)

    def fail_next(self, kind: str, times: int = 1, **options: Any) -> None:
        """Make the next ``times`` chat requests fail as ``kind`` says (see openai_fake for the kinds;
        ``error_line`` is a ``{"error": ...}`` line after ``after`` lines)."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; known: {', '.join(FAULTS)}")
        self._faults.extend({"kind": kind, **options} for _ in range(times))

    def _known(self, model: str | None) -> bool:
        if not model:
            return False
        names = set(self.installed) | {n.removesuffix(":latest") for n in self.installed}
        return model in names

    def _tags(self, request: Recorded) -> Reply:
        return Reply(
            body={
                "models": [
                    {
                        "name": n,
                        "model": n,
                        "modified_at": "2025-01-01T12:00:00.000000+00:00",
                        "size": 2019393189,
                        "digest": "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72",
                        "details": {
                            "parent_model": "",
                            "format": "gguf",
                            "family": "llama",
                            "families": ["llama"],
                            "parameter_size": "3.2B",
                            "quantization_level": "Q4_K_M",
                        },
                    }
                    for n in self.installed
                ]
            }
        )

    def _chat(self, request: Recorded) -> Reply:
        fault = self._faults.pop(0) if self._faults else {}
        kind = fault.get("kind")
        if kind == "status":
            return Reply(
                fault.get("status", 500),
                headers=fault.get("headers"),
                body=fault.get("body", {"error": "an internal error occurred"}),
            )
        body = request.json or {}
        model = body.get("model")
        if not self._known(model):
            return Reply(404, body={"error": f'model "{model}" not found, try pulling it first'})
        answer = list(self.answer)
        if kind == "large":
            size = int(fault.get("size", 1_000_000))
            piece = "lorem ipsum dolor sit amet " * 40
            answer = [piece[: min(len(piece), size - i)] for i in range(0, size, len(piece))]
        final = {
            "model": model,
            "created_at": CREATED,
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": self.done_reason,
            "total_duration": 4883583458,
            "load_duration": 1334875,
            "prompt_eval_count": self.usage["prompt_eval_count"],
            "prompt_eval_duration": 342546000,
            "eval_count": self.usage["eval_count"],
            "eval_duration": 4535599000,
        }
        thinks = bool(body.get("think"))
        if body.get("stream") is False:
            final["message"]["content"] = "".join(answer)
            if thinks:
                final["message"]["thinking"] = "".join(self.thinking)
            return Reply(body=final)
        thought_lines = [
            json.dumps(
                {
                    "model": model,
                    "created_at": CREATED,
                    "message": {"role": "assistant", "content": "", "thinking": piece},
                    "done": False,
                }
            )
            + "\n"
            for piece in (self.thinking if thinks else [])
        ]
        lines = thought_lines + [
            json.dumps(
                {
                    "model": model,
                    "created_at": CREATED,
                    "message": {"role": "assistant", "content": piece},
                    "done": False,
                }
            )
            + "\n"
            for piece in answer
        ]
        after = int(fault.get("after", 2))
        if kind == "malformed":
            lines.insert(after, '{"model": "x", "message": {"content": \n')
        elif kind == "error_line":
            failure = {"error": "an error was encountered while running the model"}
            lines.insert(after, json.dumps(failure) + "\n")
        if kind != "truncated":
            lines.append(json.dumps(final) + "\n")
        reply = Reply(
            chunks=lines,
            content_type="application/x-ndjson",
            drip=kind == "drip",
            chunk_delay=float(fault.get("delay", 0)),
        )
        if kind == "reset":
            reply.reset_after = after
        elif kind == "close":
            reply.close_after = after
        elif kind == "stall":
            reply.stall_after, reply.stall = after, float(fault.get("seconds", 30))
        return reply
