"""The guides list what the code has: keys, variables, files, options, messages, links.

Each test reads a list from the code (``ttt_magic.config.SCHEMA``, the magics'
argument parsers, the source of the messages, the files of the repository) and
compares it with what a guide says, so a change on one side without the other
fails here, naming what is missing or stale:

* docs/configuration.md: a row for every key, with its default and its
  environment variables; every environment variable and file location;
* examples/config/ttt.yaml: every key, each under a comment, and it loads;
* docs/magics.md: every magic, every option and choice of its parser, every
  ``TTTMagics`` configurable trait;
* docs/troubleshooting.md: every quoted message fragment still exists in
  ``ttt_magic/``, and each situation users meet has a section;
* README.md and docs/*.md: every relative link (and #anchor) resolves to a file
  of this repository.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml

from ttt_magic.config import SCHEMA

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CONFIG_DOC = ROOT / "docs" / "configuration.md"
MAGICS_DOC = ROOT / "docs" / "magics.md"
TROUBLE_DOC = ROOT / "docs" / "troubleshooting.md"
EXAMPLE_CONFIG = ROOT / "examples" / "config" / "ttt.yaml"

FENCED = re.compile(r"^[ \t]*(`{3,}).*?^[ \t]*\1[ \t]*$", re.M | re.S)
INLINE = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.S)


def ticked(text: str) -> list[str]:
    """The inline code spans of Markdown text (fenced blocks ignored), stripped."""
    return [m.group(2).strip() for m in INLINE.finditer(FENCED.sub("", text))]


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def section(text: str, heading: str, level: int = 2) -> str:
    """The text under the first heading of ``level`` that contains ``heading``, up to the next one."""
    marks = "#" * level
    pattern = re.compile(
        rf"^{marks} [^\n]*{re.escape(heading)}[^\n]*\n(.*?)(?=^#{{1,{level}}} |\Z)", re.M | re.S
    )
    found = pattern.search(text)
    assert found, f"no '{marks} ...{heading}...' section"
    return found.group(1)


def prose(text: str) -> str:
    """Markdown without code: fenced blocks and inline code removed."""
    return INLINE.sub("", FENCED.sub("", text))


# --------------------------------------------------------------------------- links


LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REF_LINK = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$", re.M)
HTML_LINK = re.compile(r"""<(?:a|img)\b[^>]*?\b(?:href|src)\s*=\s*["']([^"']+)["']""", re.I)


def links(path: Path) -> list[str]:
    text = prose(read(path))
    return LINK.findall(text) + REF_LINK.findall(text) + HTML_LINK.findall(text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|<[^>]+>", "", heading.strip()).lower()
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for heading in re.findall(r"^#{1,6} (.+?)\s*#*\s*$", FENCED.sub("", read(path)), re.M):
        base = slug(heading)
        n = seen.get(base, 0)
        out.add(base if n == 0 else f"{base}-{n}")
        seen[base] = n + 1
    return out


@pytest.mark.parametrize("doc", DOCS, ids=[d.relative_to(ROOT).as_posix() for d in DOCS])
def test_links_stay_in_the_repository_and_resolve(doc):
    problems = []
    for target in links(doc):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # a URL
            if not target.lower().startswith(("http://", "https://", "mailto:")):
                problems.append(f"{target}: not a web link (file:, ...)")
            continue
        path_part, _, anchor = target.partition("#")
        if path_part.startswith("/"):
            problems.append(f"{target}: absolute path (write it relative to {doc.name})")
            continue
        resolved = (doc.parent / path_part).resolve() if path_part else doc
        if ROOT not in resolved.parents and resolved != ROOT:
            problems.append(f"{target}: outside the repository")
        elif not resolved.exists():
            problems.append(f"{target}: no such file ({resolved.relative_to(ROOT)})")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            problems.append(f"{target}: no heading #{anchor} in {resolved.relative_to(ROOT)}")
    assert not problems, f"{doc.relative_to(ROOT)}: " + "; ".join(problems)


def test_readme_names_nothing_outside_the_repository():
    text = read(ROOT / "README.md")
    assert "../" not in text, "README.md is at the root: a ../ path leaves the repository"


def test_readme_links_every_guide():
    targets = {t.partition("#")[0] for t in links(ROOT / "README.md")}
    guides = {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")} | {"docs/architecture.md"}
    missing = sorted(guides - targets)
    assert not missing, f"README.md does not link these guides: {missing}"


def test_the_link_checker_catches_broken_links(tmp_path, monkeypatch):
    page = ROOT / "docs" / "magics.md"
    monkeypatch.setattr(
        sys.modules[__name__],
        "read",
        lambda path: (
            "[gone](missing.md) [out](../../x.md) [ok](configuration.md#files) "
            "[bad anchor](configuration.md#nope) `[in code](nowhere.md)`"
            if path == page
            else path.read_text(encoding="utf-8")
        ),
    )
    with pytest.raises(AssertionError) as failure:
        test_links_stay_in_the_repository_and_resolve(page)
    message = str(failure.value)
    assert "missing.md: no such file" in message and "../../x.md: outside" in message
    assert "#nope" in message and "configuration.md#files" not in message and "nowhere" not in message


# --------------------------------------------------------------------------- configuration.md


def key_rows() -> dict[str, list[str]]:
    """Rows of the 'Every key' table: key -> [default, environment, description] cells."""
    table = section(read(CONFIG_DOC), "Every key")
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        match = re.fullmatch(r"`([a-z_][a-z0-9_]*)`", cells[0]) if line.startswith("|") else None
        if match:
            rows[match.group(1)] = cells[1:]
    return rows


def test_every_key_has_a_row():
    rows = key_rows()
    missing = [k for k in SCHEMA if k not in rows]
    stale = [k for k in rows if k not in SCHEMA]
    assert not missing, f"docs/configuration.md 'Every key' has no row for: {', '.join(missing)}"
    assert not stale, f"docs/configuration.md documents keys that no longer exist: {', '.join(stale)}"


@pytest.mark.parametrize("key", sorted(SCHEMA))
def test_key_row_default_and_environment(key):
    rows = key_rows()
    if key not in rows:
        pytest.skip("no row (test_every_key_has_a_row names it)")
    default_cell, env_cell = rows[key][0], rows[key][1]
    setting = SCHEMA[key]
    shown = re.fullmatch(r"`([^`]*)`", default_cell)
    if shown:
        written = yaml.safe_load(shown.group(1))
        actual = setting.default
        assert written == actual, f"{key}: the doc's default is {shown.group(1)!r}, the code's {actual!r}"
    else:
        assert isinstance(setting.default, (dict, list)) and setting.default, (
            f"{key}: write the default as `yaml`, not {default_cell!r}"
        )
    documented = set(ticked(env_cell))
    assert documented == set(setting.env), (
        f"{key}: the doc lists {sorted(documented) or 'no variable'}, "
        f"the code reads {list(setting.env) or 'none'}"
    )


def test_every_environment_variable_is_listed():
    listed = set(ticked(section(read(CONFIG_DOC), "Environment variables")))
    wanted = {"TTT_CONFIG", *(env for s in SCHEMA.values() for env in s.env)}
    missing = sorted(wanted - listed)
    assert not missing, f"docs/configuration.md 'Environment variables' lacks: {', '.join(missing)}"
    source = "".join(read(p) for p in [*(ROOT / "ttt_magic").rglob("*.py"), *(ROOT / "plugins").glob("*.py")])
    first_column = re.findall(
        r"^\| `([A-Z][A-Z0-9_]+)`", section(read(CONFIG_DOC), "Environment variables"), re.M
    )
    stale = sorted(v for v in first_column if v not in wanted and f'"{v}"' not in source)
    assert not stale, f"docs/configuration.md lists variables nothing reads: {', '.join(stale)}"


def test_every_file_location_is_listed(monkeypatch, tmp_path):
    from ttt_magic import config

    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("TTT_CONFIG", raising=False)
    monkeypatch.chdir(work)
    listed = set(ticked(section(read(CONFIG_DOC), "Files")))
    shown = []
    for path in config.config_files():
        if path.parent == work or work in path.parents:
            shown.append("./" + path.relative_to(work).as_posix())
        else:
            shown.append("~/" + path.relative_to(home).as_posix())
    missing = [p for p in shown if p not in listed]
    assert not missing, f"docs/configuration.md 'Files' lacks: {', '.join(missing)}"
    order = [p for p in re.findall(r"`([.~]/[^`]+)`", section(read(CONFIG_DOC), "Files")) if p in shown]
    assert order == shown, f"the doc's order {order} is not the search order {shown}"


def test_provenance_tools_are_documented_and_exist():
    from ttt_magic import cli
    from ttt_magic.notebook.magics import TTTMagics

    text = read(CONFIG_DOC)
    for tool in ("%ttt_config --show", "python -m ttt_magic config", ".source("):
        assert tool in text, f"docs/configuration.md does not mention {tool}"
    assert "--show" in TTTMagics.ttt_config.__doc__
    assert re.search(r"""add_parser\(\s*["']config["']""", read(Path(cli.__file__)))


# --------------------------------------------------------------------------- examples/config/ttt.yaml


def test_example_config_has_every_key_under_a_comment():
    text = read(EXAMPLE_CONFIG)
    data = yaml.safe_load(text)
    missing = [k for k in SCHEMA if k not in data]
    assert not missing, f"examples/config/ttt.yaml lacks: {', '.join(missing)}"
    uncommented, commented = [], False
    for line in text.splitlines():
        if not line.strip():
            commented = False
        elif line.startswith("#"):
            commented = True
        else:
            key = re.match(r"([a-z_][a-z0-9_]*):", line)
            if key and not (commented or "#" in line):
                uncommented.append(key.group(1))
    assert not uncommented, f"examples/config/ttt.yaml: keys without a comment: {', '.join(uncommented)}"


def test_example_config_loads(monkeypatch):
    from ttt_magic.config import get_config

    monkeypatch.setenv("TTT_CONFIG", str(EXAMPLE_CONFIG))
    settings = get_config()
    assert settings.files == [EXAMPLE_CONFIG]
    from_file = [k for k in SCHEMA if settings.source(k) == str(EXAMPLE_CONFIG)]
    not_applied = [k for k in SCHEMA if k not in from_file and not settings.source(k).startswith("env ")]
    assert not not_applied, f"examples/config/ttt.yaml does not set: {', '.join(not_applied)}"


def test_a_new_key_without_docs_is_named(monkeypatch):
    """What another engineer sees after adding a setting and forgetting the guide and the example."""
    from ttt_magic import config

    extra = dict(SCHEMA)
    extra["answer_budget"] = config.Setting("answer_budget", int, 0, "tokens kept", ("TTT_ANSWER_BUDGET",))
    monkeypatch.setattr(sys.modules[__name__], "SCHEMA", extra)
    with pytest.raises(AssertionError, match="no row for: answer_budget"):
        test_every_key_has_a_row()
    with pytest.raises(AssertionError, match="lacks: answer_budget"):
        test_example_config_has_every_key_under_a_comment()
    with pytest.raises(AssertionError, match="TTT_ANSWER_BUDGET"):
        test_every_environment_variable_is_listed()


# --------------------------------------------------------------------------- magics.md


def magic_names() -> list[str]:
    from ttt_magic.notebook.magics import TTTMagics

    names = []
    for kind, prefix in (("cell", "%%"), ("line", "%")):
        names += [prefix + name for name in TTTMagics.magics[kind]]
    return names


def magic_section(name: str) -> str:
    """The section of docs/magics.md whose heading names the magic (``%%ask`` and ``%ask`` share one)."""
    text = read(MAGICS_DOC)
    for match in re.finditer(r"^## (.+)$", text, re.M):
        if name in ticked(match.group(1)):
            rest = text[match.end() :]
            end = re.search(r"^## ", rest, re.M)
            return rest[: end.start()] if end else rest
    raise AssertionError(f"docs/magics.md has no '## `{name}`' section")


@pytest.mark.parametrize("name", magic_names())
def test_every_magic_has_a_section(name):
    assert magic_section(name).strip()


def _documented_options(text: str) -> set[str]:
    return {m for tick in ticked(text) for m in re.findall(r"(?<![\w-])(-{1,2}[A-Za-z][\w-]*)", tick)}


@pytest.mark.parametrize("name", sorted({n.lstrip("%") for n in magic_names()}))
def test_every_option_of_a_magic_is_documented(name):
    from ttt_magic.notebook.magics import TTTMagics

    method = getattr(TTTMagics, name)
    text = magic_section(f"%{name}")
    documented = _documented_options(text)
    parser = getattr(method, "parser", None)
    if parser is not None:
        options = [o for action in parser._actions for o in action.option_strings]
        choices = [str(c) for action in parser._actions for c in (action.choices or [])]
    else:  # a magic that parses its own line: the flags its docstring names
        options = sorted(set(re.findall(r"(?<![\w-])(--[a-z][\w-]*)", method.__doc__ or "")))
        choices = []
    missing = [o for o in options if o not in documented]
    assert not missing, f"docs/magics.md, %{name}: options not documented: {', '.join(missing)}"
    spans = set(ticked(text))
    missing_choices = [c for c in choices if c not in spans]
    assert not missing_choices, f"docs/magics.md, %{name}: choices not documented: {missing_choices}"
    table_options = {
        o for row in re.findall(r"^\| (`-[^|]*)\|", text, re.M) for o in _documented_options(row)
    }
    stale = sorted(table_options - set(options))
    assert not stale, f"docs/magics.md, %{name}: documents options the magic does not have: {stale}"


def test_readme_magics_table_names_only_real_options():
    from ttt_magic.notebook.magics import TTTMagics

    real = {o for action in TTTMagics.ask.parser._actions for o in action.option_strings}
    real |= set(re.findall(r"--[a-z][\w-]*", TTTMagics.ttt_config.__doc__ or ""))
    rows = [line for line in read(ROOT / "README.md").splitlines() if line.startswith("| `%")]
    assert rows, "README.md has no magics table"
    named = {o for row in rows for o in _documented_options(row)}
    stale = sorted(named - real)
    assert not stale, f"README.md's magics table names options that do not exist: {stale}"
    choices = next(a.choices for a in TTTMagics.ask.parser._actions if "--format" in a.option_strings)
    assert f"-f {{{','.join(choices)}}}" in read(ROOT / "README.md"), "README.md's -f choices are out of date"


def test_every_configurable_trait_is_documented():
    from ttt_magic.notebook.magics import TTTMagics

    text = read(MAGICS_DOC)
    traits = TTTMagics.class_trait_names(config=True)
    missing = [t for t in traits if f"`TTTMagics.{t}`" not in text]
    assert not missing, f"docs/magics.md lacks the traits: {', '.join(missing)}"
    stale = [t for t in re.findall(r"`TTTMagics\.(\w+)`", text) if t not in traits]
    assert not stale, f"docs/magics.md names traits that do not exist: {stale}"


def test_the_option_check_sees_a_missing_option(monkeypatch):
    from ttt_magic.notebook.magics import TTTMagics

    text = read(MAGICS_DOC)
    section_text = magic_section("%%ask")
    monkeypatch.setattr(
        sys.modules[__name__], "magic_section", lambda name: section_text.replace("`--raw`", "")
    )
    assert hasattr(TTTMagics.ask, "parser")
    with pytest.raises(AssertionError, match="--raw"):
        test_every_option_of_a_magic_is_documented("ask")
    assert "`--raw`" in text


# --------------------------------------------------------------------------- troubleshooting.md


#: The situations users meet, and a word of the heading that covers each.
SITUATIONS = {
    "no API key": "API key",
    "Ollama not running": "Ollama",
    "unknown model": "Unknown model",
    "unknown backend": "Unknown backend",
    "bad config file": "configuration file",
    "rate limited": "Rate limited",
    "cut off mid-stream": "cut off",
    "interrupted": "Interrupted",
    "context window": "too long",
    "timeout": "Timed out",
}


def message_fragments() -> list[tuple[str, str]]:
    """(section heading, fragment) for each backticked fragment of a **Message:** line."""
    out, heading = [], ""
    for line in read(TROUBLE_DOC).splitlines():
        if line.startswith("## "):
            heading = line[3:].strip()
        elif line.startswith(("**Message:**", "**Messages:**")):
            out += [(heading, fragment) for fragment in ticked(line)]
    return out


def _source() -> str:
    return "\n".join(read(p) for p in sorted((ROOT / "ttt_magic").rglob("*.py")))


def test_every_situation_has_a_section_with_messages():
    headings = re.findall(r"^## (.+)$", read(TROUBLE_DOC), re.M)
    uncovered = [s for s, word in SITUATIONS.items() if not any(word.lower() in h.lower() for h in headings)]
    assert not uncovered, f"docs/troubleshooting.md has no section for: {', '.join(uncovered)}"
    with_messages = {h for h, _ in message_fragments()}
    silent = [h for h in headings if h not in with_messages]
    assert not silent, f"docs/troubleshooting.md sections without a **Message:** line: {silent}"
    assert len(message_fragments()) >= 20


@pytest.mark.parametrize(
    ("heading", "fragment"), message_fragments(), ids=[f for _, f in message_fragments()]
)
def test_quoted_message_still_exists_in_the_source(heading, fragment):
    assert fragment in _source(), (
        f"docs/troubleshooting.md, '{heading}': the message {fragment!r} is no longer in ttt_magic/; "
        "update the guide to the new wording"
    )
