"""Large jobs on the providers' batch engines (issue #14), against fakes of the three batch APIs.

``submit_batch`` builds each row as one ``ask`` would (the backend's own
``exchange``), estimates at the batch price, submits, and keeps the job in a
state file; ``BatchJob.load`` picks it up (every test "restarts" between
submit and results by loading the state file into a new object); ``wait``
polls on an injected clock (no real sleep); ``results`` reads the results
files line by line into ``Answers`` in input order. The official SDKs,
pointed at the same fakes, must read the same values.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.fakes import SENTINEL_KEY
from tests.fakes.anthropic_batch_fake import AnthropicBatchFake
from tests.fakes.google_batch_fake import GeminiBatchFake
from tests.fakes.openai_batch_fake import OpenAIBatchFake
from ttt_magic import batchjobs
from ttt_magic.batch import Answers, Estimate, estimate
from ttt_magic.batchjobs import BatchJob, BatchNotFinished, run_batch, submit_batch
from ttt_magic.config import configure
from ttt_magic.errors import UsageError
from ttt_magic.registry import model_registry

KEY = SENTINEL_KEY
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "google": "gemini-2.5-flash"}
ENGINES = list(MODELS)


class Clock:
    """The clock and sleep of ``wait``: sleeping advances the clock at once."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self.interrupt_after: int | None = None

    def sleep(self, seconds: float) -> None:
        if self.interrupt_after is not None and len(self.sleeps) >= self.interrupt_after:
            raise KeyboardInterrupt
        self.sleeps.append(seconds)
        self.now += seconds

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(batchjobs, "sleep", fake.sleep)
    monkeypatch.setattr(batchjobs, "clock", fake.time)
    return fake


def start(engine: str, fake_factory):
    if engine == "openai":
        fake = fake_factory(OpenAIBatchFake, api_key=KEY)
        configure(openai_base_url=fake.base_url, openai_api_key=KEY, enable_fallbacks=False)
    elif engine == "anthropic":
        fake = fake_factory(AnthropicBatchFake, api_key=KEY)
        configure(anthropic_base_url=fake.url, anthropic_api_key=KEY, enable_fallbacks=False)
    else:
        fake = fake_factory(GeminiBatchFake, api_key=KEY)
        configure(gemini_base_url=fake.url, google_api_key=KEY, enable_fallbacks=False)
    return fake


@pytest.fixture(params=ENGINES)
def service(request, fake_factory, clock):
    """(engine, its fake, its model) for each of the three batch services."""
    return request.param, start(request.param, fake_factory), MODELS[request.param]


def restart(job: BatchJob) -> BatchJob:
    """What a new kernel sees: only the state file."""
    return BatchJob.load(job.path)


def half_price(model: str, tokens_in: int, tokens_out: int) -> float:
    return model_registry.get_model(model).cost(tokens_in, tokens_out) / 2


PROMPTS = [f"question {i}" for i in range(12)]


# --------------------------------------------------------------------------- end to end, every service


def test_submit_restart_wait_results_in_input_order(service, clock, capsys):
    engine, fake, model = service
    fake.behaviour.polls = 2
    fake.behaviour.fail = {3, 7}
    job = submit_batch(PROMPTS, "Q: {}", model=model, system="Be brief.", max_tokens=40)
    note = capsys.readouterr().err
    assert "rows sent to the" in note and str(job.path) in note
    assert job.engine == engine and job.rows == 12 and len(job.ids) == 1

    saved = json.loads(job.path.read_text())
    assert saved["kind"] == "ttt-magic-batch" and saved["parts"][0]["id"] == job.ids[0]
    assert saved["price"]["basis"] == "half the catalogue price"
    assert saved["estimate"]["requests"] == 12 and saved["estimate"]["cost"] > 0

    again = restart(job)
    assert again.saved_status().pending == 12
    status = again.wait(progress=False)
    assert status.ended and (status.done, status.failed, status.pending) == (10, 2, 0)
    assert clock.sleeps == [5.0, 7.5]  # the back-off: 5 s, then 1.5 times longer

    answers = restart(job).results()
    assert isinstance(answers, Answers) and len(answers) == 12
    assert answers.failed == [3, 7]
    for i, answer in enumerate(answers):
        if i in (3, 7):
            assert answer.error and answer.text == "" and answer.metadata["batch_id"] == job.ids[0]
            continue
        assert answer.text == f"Answer {i}: Q: question {i}"
        assert answer.model == model and answer.backend == "cloud"
        assert answer.metadata["batch_id"] == job.ids[0] and answer.metadata["provider"] == engine
        assert answer.cost == pytest.approx(half_price(model, answer.tokens_in, answer.tokens_out))
    frame = answers.to_frame()
    assert list(frame["text"])[:3] == answers.texts[:3] and frame["error"].notna().sum() == 2


def test_request_lines_are_the_bodies_ask_would_send(service, clock):
    from ttt_magic import router
    from ttt_magic.registry import backend_registry
    from ttt_magic.request import Request
    from ttt_magic.scope import effective

    engine, fake, model = service
    job = submit_batch(["alpha", "beta"], "Say {}", model=model, system="Be brief.", temperature=0.2)
    lines = [json.loads(x) for x in (job.path.parent / job.parts[0]["file"]).read_text().splitlines()]
    cloud = backend_registry.get("cloud")
    adapter = cloud.adapter(engine)
    for i, line in enumerate(lines):
        request = Request(["Say alpha", "Say beta"][i], model=model, system="Be brief.", temperature=0.2)
        call = router.prepare(request, cloud, "cloud", model, effective(), stream=False)
        expected = adapter.exchange(call, model, stream=False).json
        body = {
            "openai": lambda x: x["body"],
            "anthropic": lambda x: x["params"],
            "google": lambda x: x["request"],
        }
        assert body[engine](line) == expected
    if engine == "openai":
        uploaded = fake.files[fake.batches[job.ids[0]]["input_file_id"]]["_data"].decode()
        assert [json.loads(x) for x in uploaded.splitlines()] == lines
        assert lines[0]["url"] == "/v1/chat/completions" and lines[0]["custom_id"] == "row-0"
    elif engine == "anthropic":
        assert [r["params"] for r in fake.requests[0].json["requests"]] == [x["params"] for x in lines]
    else:
        sent = fake.requests[0]
        assert sent.path == f"/v1beta/models/{model}:batchGenerateContent"
        assert sent.json["batch"]["inputConfig"]["requests"]["requests"] == lines


def test_rows_built_once_and_filled_in_equal_the_exchange_of_each_row(service, clock):
    """Quotes, newlines, non-ASCII, a line separator and a configured key in prompts."""
    from ttt_magic import router
    from ttt_magic.registry import backend_registry
    from ttt_magic.request import Request
    from ttt_magic.scope import effective
    from ttt_magic.withhold import configured_secrets, withhold_call

    engine, _fake, model = service
    prompts = ['say "hi"\n\tnow', "ünïcødé ☃ 日本", f"my key is {KEY}!", "back\\slash \u2028 end", "{}"]
    job = submit_batch(prompts, model=model, system="Be brief.")
    text = (job.path.parent / job.parts[0]["file"]).read_text(encoding="utf-8")
    assert KEY not in text and "\u2028" not in text  # escaped: some readers split lines there
    cloud = backend_registry.get("cloud")
    adapter = cloud.adapter(engine)
    service_ = batchjobs.service_for(cloud, model)[0]
    for i, line in enumerate(text.split("\n")[:-1]):
        call = router.prepare(
            Request(prompts[i], model=model, system="Be brief."),
            cloud,
            "cloud",
            model,
            effective(),
            stream=False,
        )
        call, _ = withhold_call(call, configured_secrets(effective()))
        expected = service_.line(f"row-{i}", adapter.exchange(call, model, stream=False))
        assert json.loads(line) == expected


def test_the_key_is_in_no_file_and_the_state_file_is_plain_json(service, clock):
    _engine, _fake, model = service
    job = submit_batch(PROMPTS[:3], model=model)
    restart(job).wait(progress=False)
    restart(job).results()
    for path in job.path.parent.iterdir():
        assert KEY not in path.read_text(), path
    assert not list(job.path.parent.glob(".*.tmp"))  # the atomic write left nothing behind


def test_an_expired_job_fails_the_rows_it_did_not_reach_and_retry_sends_only_those(service, clock):
    engine, fake, model = service
    fake.behaviour.expire_after = 4
    job = submit_batch(PROMPTS[:10], model=model)
    status = restart(job).wait(progress=False)
    assert status.ended and (status.done, status.failed) == (4, 6)
    assert status.provider_states == [
        {"openai": "expired", "anthropic": "ended", "google": "BATCH_STATE_EXPIRED"}[engine]
    ]
    answers = restart(job).results()
    assert answers.failed == list(range(4, 10))
    assert all("expired" in answers[i].error.lower() for i in answers.failed)

    fake.behaviour.expire_after = None
    retried = restart(job).retry_failed()
    assert len(retried.parts) == 2 and retried.parts[1]["count"] == 6
    resent = (job.path.parent / retried.parts[1]["file"]).read_text().splitlines()
    ids = sorted(
        int(json.loads(x).get("custom_id", json.loads(x).get("metadata", {}).get("key", "row-x"))[4:])
        for x in resent
    )
    assert ids == list(range(4, 10))
    assert restart(job).saved_status().pending == 6
    assert restart(job).wait(progress=False).failed == 0
    final = restart(job).results()
    assert final.failed == [] and final.texts[5] == "Answer 5: question 5"
    assert final[5].metadata["batch_id"] == retried.parts[1]["id"] != final[0].metadata["batch_id"]


def test_failed_rows_keep_their_error_and_retry_with_ask_many(service, clock):
    engine, fake, model = service
    fake.behaviour.fail = {1}
    job = submit_batch(PROMPTS[:4], model=model)
    restart(job).wait(progress=False)
    failed = restart(job).results()[1]
    assert failed.failed and failed.metadata["error_info"]["kind"]
    assert {"openai": "fake refuses", "anthropic": "fake refuses", "google": "invalid"}[
        engine
    ] in failed.error

    from ttt_magic.plugins import ensure_discovered

    ensure_discovered()
    loaded = BatchJob.load(job.path)
    loaded.state["ask_kwargs"] = {"backend": "echo"}  # the retry goes to an offline backend
    loaded.retry_failed(engine="ask_many")
    answers = restart(job).results()
    assert answers.failed == [] and answers[1].backend == "echo" and "question 1" in answers[1].text
    assert restart(job).saved_status().done == 4


def test_cancel_keeps_what_was_answered(service, clock):
    _engine, fake, model = service
    fake.behaviour.polls = 3
    job = submit_batch(PROMPTS[:8], model=model)
    first = restart(job).status()  # one poll: 2 of 8 processed (8 * 1 // 4)
    assert first.state == "in_progress" and first.done == 2
    cancelling = restart(job).cancel()
    assert cancelling.state in ("cancelling", "ended")
    status = restart(job).wait(progress=False)
    assert status.ended and status.done == 2 and status.failed == 6
    answers = restart(job).results()
    assert answers.failed == list(range(2, 8)) and answers.texts[0] == "Answer 0: question 0"


def test_wait_interrupted_leaves_the_job_running_and_a_new_kernel_picks_it_up(service, clock, capsys):
    _engine, fake, model = service
    fake.behaviour.polls = 5  # two polls in wait, one in each results() below, then the end
    job = submit_batch(PROMPTS[:5], model=model)
    clock.interrupt_after = 1
    with pytest.raises(KeyboardInterrupt):
        restart(job).wait(progress=False)
    err = capsys.readouterr().err
    assert "keeps running" in err and "BatchJob.load(" in err
    assert not [r for r in fake.requests if r.path.endswith("cancel")]
    clock.interrupt_after = None
    with pytest.raises(BatchNotFinished):
        restart(job).results()
    partial = restart(job).results(partial=True)
    assert any(r.metadata.get("pending") for r in partial)
    assert restart(job).wait(progress=False).ended
    assert restart(job).results().ok_count == 5


def test_submitting_the_same_rows_again_picks_the_job_up(service, clock, capsys):
    _engine, fake, model = service
    first = submit_batch(PROMPTS[:3], "Q: {}", model=model)
    second = submit_batch(PROMPTS[:3], "Q: {}", model=model)
    assert second.path == first.path and second.ids == first.ids
    assert "already holds this job" in capsys.readouterr().err
    creates = [
        r for r in fake.requests if r.method == "POST" and "cancel" not in r.path and "/files" not in r.path
    ]
    assert len(creates) == 1
    with pytest.raises(UsageError, match="holds another batch job"):
        submit_batch(PROMPTS[:4], model=model, state=first.path)


def test_parts_split_at_the_service_limit(service, clock, monkeypatch):
    _engine, _fake, model = service
    from ttt_magic.registry import backend_registry

    job_service = batchjobs.service_for(backend_registry.get("cloud"), model)[0]
    monkeypatch.setattr(type(job_service), "max_rows", 4)
    job = submit_batch(PROMPTS[:10], model=model)
    assert [p["count"] for p in job.parts] == [4, 4, 2] and len(set(job.ids)) == 3
    assert [p["rows"] for p in job.parts] == [[0, 4], [4, 8], [8, 10]]
    restart(job).wait(progress=False)
    assert restart(job).results().texts == [f"Answer {i}: question {i}" for i in range(10)]


def test_structured_answers_are_checked_against_the_schema(service, clock):
    engine, fake, model = service
    fake.behaviour.answer = lambda prompt, row: (
        json.dumps({"topic": prompt, "score": row}) if row != 2 else "no JSON"
    )
    job = submit_batch(PROMPTS[:3], model=model, schema={"topic": str, "score": int})
    line = json.loads((job.path.parent / job.parts[0]["file"]).read_text().splitlines()[0])
    if engine == "openai":
        assert line["body"]["response_format"]["type"] == "json_schema"
    elif engine == "anthropic":
        assert "JSON Schema" in line["params"]["system"]  # no native schema: it is in the prompt
    else:
        assert line["request"]["generationConfig"]["responseMimeType"] == "application/json"
    restart(job).wait(progress=False)
    answers = restart(job).results()
    assert answers.data[:2] == [{"topic": "question 0", "score": 0}, {"topic": "question 1", "score": 1}]
    assert answers.failed == [2] and "schema" in answers[2].error
    assert list(answers.to_frame().columns) == ["topic", "score", "error"]


def test_iter_results_streams_pairs(service, clock):
    _engine, _fake, model = service
    job = submit_batch(PROMPTS[:6], model=model)
    restart(job).wait(progress=False)
    pairs = list(restart(job).iter_results())
    assert sorted(i for i, _ in pairs) == list(range(6))
    assert all(r.text == f"Answer {i}: question {i}" for i, r in pairs)


# --------------------------------------------------------------------------- the 10,000-row job


@pytest.mark.parametrize("engine", ENGINES)
def test_ten_thousand_rows_end_to_end(engine, fake_factory, clock):
    fake = start(engine, fake_factory)
    fake.behaviour.fail = lambda row: row % 1000 == 7
    rows = [{"id": i, "text": f"document number {i} about topic {i % 17}"} for i in range(10_000)]
    started = time.perf_counter()
    job = submit_batch(rows, "Summarize: {text}", model=MODELS[engine], max_tokens=64)
    status = restart(job).wait(progress=False)
    answers = restart(job).results()
    took = time.perf_counter() - started
    assert status.ended and (status.done, status.failed) == (9_990, 10)
    assert len(answers) == 10_000 and answers.failed == [i * 1000 + 7 for i in range(10)]
    assert answers.texts[4321] == "Answer 4321: Summarize: document number 4321 about topic 3"
    assert answers.usage["cost"] == pytest.approx(
        sum(half_price(MODELS[engine], r.tokens_in, r.tokens_out) for r in answers if not r.failed), abs=1e-6
    )
    assert took < 30, took


# --------------------------------------------------------------------------- estimates, budgets, engines


def test_dry_run_estimates_at_half_the_catalogue_price(fake_factory, clock):
    start("openai", fake_factory)
    batch_estimate = submit_batch(PROMPTS, "Q: {}", model="gpt-4o-mini", max_tokens=100, dry_run=True)
    direct = estimate(PROMPTS, "Q: {}", model="gpt-4o-mini", max_tokens=100)
    assert isinstance(batch_estimate, Estimate) and batch_estimate.requests == 12
    assert batch_estimate.cost == pytest.approx(direct.cost / 2, rel=1e-4)
    assert any("batch rate" in n for n in batch_estimate.notes)


def test_a_catalogue_batch_price_wins_over_half(monkeypatch):
    info = model_registry.get_model("gpt-4o-mini")
    monkeypatch.setattr(info, "batch_input_cost_per_mtok", 0.01, raising=False)
    monkeypatch.setattr(info, "batch_output_cost_per_mtok", 0.02, raising=False)
    price = batchjobs.batch_price("gpt-4o-mini")
    assert price == {"input_per_mtok": 0.01, "output_per_mtok": 0.02, "basis": "the catalogue's batch price"}


def test_a_budget_below_the_estimate_sends_nothing(fake_factory, clock):
    fake = start("openai", fake_factory)
    with pytest.raises(UsageError, match="over the budget"):
        submit_batch(PROMPTS, model="gpt-4o-mini", budget=0.000001)
    assert not fake.requests


def test_a_backend_without_a_batch_service_falls_back_to_ask_many_with_a_note(clock, capsys, tmp_path):
    job = submit_batch(["one", "two"], "Echo {}", backend="mock")
    assert "has no batch service" in capsys.readouterr().err
    assert job.engine == "ask_many" and job.saved_status().ended
    answers = restart(job).results()
    assert answers.ok_count == 2 and answers[0].backend == "mock"
    with pytest.raises(UsageError, match="'mock' has no batch service"):
        submit_batch(["one"], backend="mock", engine="batch")


def test_an_openai_compatible_server_has_no_batch_service(fake_factory, clock):
    fake = fake_factory(OpenAIBatchFake)
    configure(backends={"vllm": {"type": "openai-compatible", "base_url": fake.base_url, "models": ["m1"]}})
    with pytest.raises(UsageError, match="'vllm' has no batch service"):
        submit_batch(["one"], backend="vllm", engine="batch")
    assert not [r for r in fake.requests if r.path.endswith(("/batches", "/files"))]


def test_run_batch_is_ask_many_on_the_batch_engine(fake_factory, clock):
    start("anthropic", fake_factory)
    answers = run_batch(PROMPTS[:3], "Q: {}", model="claude-haiku-4-5", progress=False, concurrency=4)
    assert isinstance(answers, Answers) and answers.texts[2] == "Answer 2: Q: question 2"


def test_run_batch_auto_asks_a_backend_without_service_directly_and_keeps_no_file(clock, capsys, tmp_path):
    from pathlib import Path

    answers = run_batch(["one", "two"], "Echo {}", backend="mock", engine="auto", progress=False)
    assert isinstance(answers, Answers) and answers.ok_count == 2
    assert "asking directly" in capsys.readouterr().err
    assert not list(Path.cwd().glob("batch-*"))
    with pytest.raises(UsageError, match="'mock' has no batch service"):
        run_batch(["one"], backend="mock")  # engine="batch": demanded
    with pytest.raises(UsageError, match="engine must be"):
        run_batch(["one"], backend="mock", engine="fast")


def test_a_pandas_index_survives_the_restart(fake_factory, clock):
    pd = pytest.importorskip("pandas")
    start("openai", fake_factory)
    df = pd.DataFrame({"body": ["a", "b", "c"]}, index=[10, 20, 30])
    job = submit_batch(df, "Say {body}", model="gpt-4o-mini")
    restart(job).wait(progress=False)
    joined = df.join(restart(job).results().to_frame())
    assert list(joined.index) == [10, 20, 30]
    assert list(joined["text"]) == ["Answer 0: Say a", "Answer 1: Say b", "Answer 2: Say c"]


def test_gemini_answers_without_keys_are_placed_by_order(fake_factory, clock):
    fake = start("google", fake_factory)
    fake.echo_keys = False
    fake.behaviour.fail = {1}
    job = submit_batch(PROMPTS[:4], model="gemini-2.5-flash")
    restart(job).wait(progress=False)
    answers = restart(job).results()
    assert answers.failed == [1] and answers.texts[3] == "Answer 3: question 3"


def test_anthropic_results_url_on_another_host_is_not_followed(fake_factory, clock):
    fake = start("anthropic", fake_factory)
    job = submit_batch(PROMPTS[:2], model="claude-haiku-4-5")
    restart(job).wait(progress=False)
    loaded = restart(job)
    loaded.parts[0]["results_url"] = "https://elsewhere.example/results"
    assert loaded.results().ok_count == 2
    assert fake.requests[-1].path == f"/v1/messages/batches/{job.ids[0]}/results"


def test_a_refused_request_file_fails_every_row_with_the_reason(fake_factory, clock, monkeypatch):
    start("openai", fake_factory)
    original = OpenAIBatchFake._read_input

    def refuse(data, endpoint):
        return [], {"code": "invalid_request", "message": "This line is refused.", "line": 1}

    monkeypatch.setattr(OpenAIBatchFake, "_read_input", staticmethod(refuse))
    job = submit_batch(PROMPTS[:2], model="gpt-4o-mini")
    monkeypatch.setattr(OpenAIBatchFake, "_read_input", staticmethod(original))
    status = restart(job).wait(progress=False)
    assert status.ended and status.failed == 2 and "refused the batch (line 1)" in status.errors[0]
    assert all("refused the batch" in r.error for r in restart(job).results())


# --------------------------------------------------------------------------- the official SDKs as oracles


def _rows_of(job: BatchJob) -> list[dict]:
    return [json.loads(x) for x in (job.path.parent / job.parts[0]["file"]).read_text().splitlines()]


def test_openai_sdk_reads_the_fake_like_our_code(fake_factory, clock):
    openai = pytest.importorskip("openai")
    fake = start("openai", fake_factory)
    fake.behaviour.fail = {2}
    job = submit_batch(PROMPTS[:5], model="gpt-4o-mini")
    client = openai.OpenAI(base_url=fake.base_url, api_key=KEY, max_retries=0)
    with open(job.path.parent / job.parts[0]["file"], "rb") as handle:
        uploaded = client.files.create(file=handle, purpose="batch")
    created = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    batch = client.batches.retrieve(created.id)
    while batch.status not in ("completed", "failed", "expired", "cancelled"):
        batch = client.batches.retrieve(batch.id)
    ours = restart(job).wait(progress=False)
    assert (batch.request_counts.completed, batch.request_counts.failed) == (ours.done, ours.failed)
    sdk = {}
    for text in client.files.content(batch.output_file_id).text.splitlines():
        line = json.loads(text)
        body = line["response"]["body"]
        sdk[line["custom_id"]] = (body["choices"][0]["message"]["content"], body["usage"]["prompt_tokens"])
    errors = [json.loads(x)["custom_id"] for x in client.files.content(batch.error_file_id).text.splitlines()]
    answers = restart(job).results()
    assert errors == ["row-2"] and answers.failed == [2]
    for i, answer in enumerate(answers):
        if i != 2:
            assert sdk[f"row-{i}"] == (answer.text, answer.tokens_in)
    assert batch.usage.input_tokens == sum(r.tokens_in for r in answers if not r.failed)


def test_anthropic_sdk_reads_the_fake_like_our_code(fake_factory, clock):
    anthropic = pytest.importorskip("anthropic")
    fake = start("anthropic", fake_factory)
    fake.behaviour.fail = {1}
    job = submit_batch(PROMPTS[:4], model="claude-haiku-4-5", max_tokens=30)
    client = anthropic.Anthropic(base_url=fake.url, api_key=KEY, max_retries=0)
    created = client.messages.batches.create(requests=_rows_of(job))
    batch = client.messages.batches.retrieve(created.id)
    while batch.processing_status != "ended":
        batch = client.messages.batches.retrieve(batch.id)
    ours = restart(job).wait(progress=False)
    assert (batch.request_counts.succeeded, batch.request_counts.errored) == (ours.done, ours.failed)
    sdk = {r.custom_id: r.result for r in client.messages.batches.results(batch.id)}
    answers = restart(job).results()
    assert sdk["row-1"].type == "errored" and answers.failed == [1]
    assert sdk["row-1"].error.error.message in answers[1].error
    for i in (0, 2, 3):
        message = sdk[f"row-{i}"].message
        assert (message.content[0].text, message.usage.input_tokens, message.usage.output_tokens) == (
            answers[i].text,
            answers[i].tokens_in,
            answers[i].tokens_out,
        )


def test_google_genai_sdk_reads_the_fake_like_our_code(fake_factory, clock):
    genai = pytest.importorskip("google.genai")
    from google.genai import types

    fake = start("google", fake_factory)
    fake.behaviour.fail = {2}
    job = submit_batch(PROMPTS[:4], model="gemini-2.5-flash")
    client = genai.Client(
        api_key=KEY, http_options=types.HttpOptions(base_url=fake.url, api_version="v1beta")
    )
    if not hasattr(client, "batches"):
        pytest.skip("this google-genai has no batches")
    src = [{"contents": line["request"]["contents"], "metadata": line["metadata"]} for line in _rows_of(job)]
    created = client.batches.create(model="gemini-2.5-flash", src=src)
    batch = client.batches.get(name=created.name)
    while batch.state.name not in ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED"):
        batch = client.batches.get(name=batch.name)
    restart(job).wait(progress=False)
    answers = restart(job).results()
    sdk = batch.dest.inlined_responses
    assert len(sdk) == 4 and sdk[2].error is not None and answers.failed == [2]
    for i in (0, 1, 3):
        assert (sdk[i].response.text, sdk[i].response.usage_metadata.prompt_token_count) == (
            answers[i].text,
            answers[i].tokens_in,
        )


# --------------------------------------------------------------------------- Gemini's answers, streamed


def test_inlined_answers_are_read_one_at_a_time_whatever_the_chunking():
    import asyncio

    from ttt_magic.backends.google_batch import inlined_items

    items = [
        {"response": {"text": 'tricky "inlinedResponses": [1, 2] and ] } ,'}, "metadata": {"key": "row-0"}},
        {"error": {"code": 400, "message": 'ünïcødé " ] \\ end'}},
        {"response": {"candidates": []}},
    ]
    document = json.dumps(
        {
            "name": "batches/x",
            "metadata": {
                "note": 'the "inlinedResponses": [ in a string',
                "output": {"inlinedResponses": {"inlinedResponses": items}},
            },
            "response": {"inlinedResponses": {"inlinedResponses": items}},
        },
        indent=2,
        ensure_ascii=False,
    ).encode()

    async def read(size):
        async def chunks():
            for i in range(0, len(document), size):
                yield document[i : i + size]

        return [item async for item in inlined_items(chunks())]

    for size in (1, 2, 3, 7, 64, len(document)):
        assert asyncio.run(read(size)) == items, size


def test_gemini_polls_ask_only_for_the_state_and_fall_back_when_refused(fake_factory, clock):
    fake = start("google", fake_factory)
    job = submit_batch(PROMPTS[:3], model="gemini-2.5-flash")
    restart(job).wait(progress=False)
    polls = [r for r in fake.requests if r.method == "GET"]
    assert polls and all(r.query.get("fields", "").startswith("name,done") for r in polls)
    fake.fields_supported = False
    other = submit_batch(PROMPTS[3:6], model="gemini-2.5-flash")
    assert restart(other).wait(progress=False).ended
    assert restart(other).results().ok_count == 3
