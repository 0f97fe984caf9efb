"""YAML documents with line numbers, `${env:NAME}` substitution and pydantic error mapping.

PyYAML composes the node tree (which carries line marks); we construct the Python data from
that same tree and record, for every path of keys / list indices, the 1-based line of the key
(for mapping entries) or of the item (for list entries). Validation errors, whose `loc` is such a
path, are then reported at the line of the offending key.
"""
from __future__ import annotations

import difflib
import os
import re
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import yaml
from pydantic import BaseModel, ValidationError

from .. import redaction
from ..errors import ConfigIssue

KeyPath = tuple  # a path of mapping keys (str) and list indices (int)

# `${env:NAME}` is replaced by the variable's value; `$${env:NAME}` is the literal `${env:NAME}`.
ENV_REF = re.compile(r"(\$?)\$\{env:([^}]*)\}")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# what is left of a value once its ${env:NAME} (and $${...}) are taken out: a `${` there is a
# reference mistyped (${ENV:KEY}, ${KEY}, ${env:KEY without its brace), not a credential
MISTYPED_REF = re.compile(r"(?<!\$)\$\{(?:[A-Za-z]+:)?[A-Za-z_][A-Za-z0-9_]*\}?")
# A file is read as the tree its aliases (*name) expand to (lines, ${env:NAME}): over this many
# values, nested aliases (a "billion laughs" file) would take minutes and gigabytes to walk.
MAX_VALUES = 100_000
# Every value substituted for ${env:NAME} is treated as a secret (masked in all output) when it
# is at least this long: secrets come from the environment, and a short value ("us") hides nothing.
ENV_SECRET_MIN_CHARS = 6


@dataclass
class YamlDoc:
    """A parsed YAML file: its data, where each path is, and what came from the environment."""

    file: str  # path shown in issues (relative to the project folder)
    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)
    env_paths: set[KeyPath] = field(default_factory=set)  # values that came from ${env:...}
    missing_env_paths: set[KeyPath] = field(default_factory=set)
    env_values: list[str] = field(default_factory=list)  # substituted values, to scrub from messages
    env_names: dict[KeyPath, list[str]] = field(default_factory=dict)  # the variables each value came from
    # a path as the user wrote it, where validation reads the data in another shape (sync fields
    # written as a mapping are items of a list: ("fields", 1) was written ("fields", "last_name"))
    written: dict[KeyPath, KeyPath] = field(default_factory=dict)

    def line(self, path: Iterable[Any]) -> int:
        """Line of `path`, or of its closest recorded ancestor (1 for the document itself)."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), 1)

    def issue(self, path: Iterable[Any], message: str, hint: str | None = None) -> ConfigIssue:
        return ConfigIssue(message=message, file=self.file, line=self.line(path), hint=hint)

    def as_written(self, path: KeyPath) -> KeyPath:
        """`path` with its longest prefix recorded in `written` replaced by what the user wrote."""
        for end in range(len(path), 0, -1):
            if path[:end] in self.written:
                return self.written[path[:end]] + path[end:]
        return path


# PyYAML's words for a mistake -> the hint for it (else _YAML_HINT)
_YAML_TAB_HINT = "YAML indents with spaces: replace the tab on this line with spaces"
_YAML_HINTS = (
    ("'\\t'", _YAML_TAB_HINT),
    ("tab character", _YAML_TAB_HINT),
    ("found another document", "one YAML document per file: remove the `---` line and what follows it"),
    ("could not determine a constructor", "remove the `!tag`: dinsync reads plain YAML"),
)
_YAML_HINT = "check indentation, quoting and that `key: value` pairs use a space after the colon"


class _KeysAsText(yaml.SafeLoader):
    """A SafeLoader that reads every scalar mapping key as the text written: no key of a dinsync
    file is anything else, and YAML 1.1 reads an unquoted `on`, `yes` or `off` as a boolean and `1`
    as a number (then "Keys should be strings", or `on` a duplicate of `1`)."""

    def __init__(self, text: str):
        super().__init__(text)
        self.merged: set[tuple[int, int]] = set()  # (mapping node, key node) pairs a `<<:` merge brought

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            written = {id(key_node) for key_node, _ in node.value}
            self.flatten_mapping(node)  # `<<: *anchor` merge keys first, as SafeLoader does
            self.merged |= {(id(node), id(key_node)) for key_node, _ in node.value if id(key_node) not in written}
            for key_node, _ in node.value:
                if isinstance(key_node, yaml.ScalarNode):
                    key_node.tag = "tag:yaml.org,2002:str"
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str, file: str) -> tuple[YamlDoc | None, list[ConfigIssue]]:
    """Parse YAML text. Returns (doc, issues); doc is None when the text cannot be parsed."""
    try:
        loader = _KeysAsText(text)
    except yaml.reader.ReaderError as exc:  # a character YAML refuses (NUL, BEL...): checked before parsing
        line = text.count("\n", 0, exc.position) + 1 if isinstance(exc.position, int) else None
        code = f"U+{exc.character:04X}" if isinstance(exc.character, int) else repr(exc.character)
        return None, [ConfigIssue(f"invalid YAML: the file holds the character {code}, which "
                                  "YAML does not allow", file, line,
                                  "delete it (a control character, say, from a copy-paste): YAML files hold text only")]
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        # Only problem/context, never the snippet of the line (it may hold a secret).
        context = exc.context
        if context and exc.context_mark and mark and exc.context_mark.line != mark.line:
            # (the parser finds an unclosed `{`, `[` or quote lines later: name where it began)
            context += f" begun on line {exc.context_mark.line + 1},"
        message = "invalid YAML: " + " ".join(p for p in (context, exc.problem) if p)
        hint = next((h for words, h in _YAML_HINTS if words in (exc.problem or "")), _YAML_HINT)
        return None, [ConfigIssue(message, file, mark.line + 1 if mark else None, hint)]
    except RecursionError:  # PyYAML composes nested lists and mappings recursively
        return None, [ConfigIssue("invalid YAML: nested too deeply", file, loader.get_mark().line + 1,
                                  "write the value with fewer levels of nested lists and mappings")]
    except yaml.YAMLError as exc:  # pragma: no cover - unmarked errors are rare
        return None, [ConfigIssue(f"invalid YAML: {exc.__class__.__name__}", file, None, None)]
    finally:
        loader.dispose()
    if node is not None and (values := _expanded_size(node, {})) > MAX_VALUES:
        return None, [ConfigIssue(f"the file's aliases (*name) expand it to {values:,} values, over the "
                                  f"{MAX_VALUES:,} dinsync reads", file, node.start_mark.line + 1,
                                  "write the values out, or alias no list or mapping that holds aliases itself")]
    doc = YamlDoc(file=file, data=data)
    issues: list[ConfigIssue] = []
    if node is not None:
        doc.lines[()] = node.start_mark.line + 1
        _record_lines(node, (), doc, issues, loader.merged)
    return doc, issues


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """How many nodes the tree below `node` holds once its aliases are expanded (each distinct
    node is counted once: an alias is the same node object as its anchor)."""
    if id(node) not in sizes:
        sizes[id(node)] = 0  # a recursive alias (&a [*a]) is refused by the constructor already
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = node.value
        else:
            children = []
        sizes[id(node)] = 1 + sum(_expanded_size(child, sizes) for child in children)
    return sizes[id(node)]


def _record_lines(node: yaml.Node, path: KeyPath, doc: YamlDoc, issues: list[ConfigIssue],
                  merged: set[tuple[int, int]]) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        constructor = yaml.constructor.SafeConstructor()
        # the keys written first (duplicates among them are mistakes), then those a `<<:` merge
        # brought, which a key written overrides (YAML's way to share settings)
        pairs = sorted(node.value, key=lambda pair: (id(node), id(pair[0])) in merged)
        for key_node, value_node in pairs:
            if (id(node), id(key_node)) in merged and key_node.value in seen:
                continue
            try:
                key = constructor.construct_object(key_node, deep=True)
            except Exception:  # unhashable / odd keys: the constructor already rejected them
                continue
            line = key_node.start_mark.line + 1
            if _hashable(key) and key in seen:
                issues.append(ConfigIssue(
                    f"duplicate key {_show_path(path + (key,))!s} (first defined on line {seen[key]})",
                    doc.file, line, "remove one of them; YAML keeps only the last value"))
                # the value checked is the last one: its problems are located there
                doc.lines[path + (key,)] = line
                _record_lines(value_node, path + (key,), doc, issues, merged)
            elif _hashable(key):
                seen[key] = line
                doc.lines[path + (key,)] = line
                _record_lines(value_node, path + (key,), doc, issues, merged)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            doc.lines[path + (index,)] = item.start_mark.line + 1
            _record_lines(item, path + (index,), doc, issues, merged)


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def substitute_env(doc: YamlDoc, env: Mapping[str, str],
                   optional: Callable[[KeyPath], bool] | None = None) -> list[ConfigIssue]:
    """Replace `${env:NAME}` in every string value of `doc` (in place). Keys are left alone. A
    variable that is not set is an issue, unless `optional(path)`: then it is replaced by ''."""
    issues: list[ConfigIssue] = []

    def walk(value: Any, path: KeyPath) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, path + (k,)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, path + (i,)) for i, v in enumerate(value)]
        if isinstance(value, str) and "${" in value:
            mistyped = MISTYPED_REF.search(ENV_REF.sub("", value))
            if mistyped:
                doc.env_paths.add(path)  # meant as an environment reference, not a value written in the file
                issues.append(doc.issue(path, f"invalid environment reference {mistyped.group(0)!r} in "
                                              f"{_show_path(path)}",
                                        "write ${env:NAME} (`env` in lower case; NAME: letters, digits and _)"))
                return value
            return substitute(value, path)
        return value

    def substitute(text: str, path: KeyPath) -> str:
        def replace(match: re.Match) -> str:
            escaped, name = match.group(1), match.group(2)
            if escaped:
                return match.group(0)[1:]
            if not ENV_NAME.match(name):
                doc.env_paths.add(path)  # meant as an environment reference, not a value written in the file
                issues.append(doc.issue(path, f"invalid environment reference in {_show_path(path)}",
                                        "write ${env:NAME} with NAME made of letters, digits and _"))
                return match.group(0)
            doc.env_paths.add(path)
            doc.env_names.setdefault(path, []).append(name)
            if name not in env:
                doc.missing_env_paths.add(path)
                if optional is not None and optional(path):
                    return ""
                issues.append(doc.issue(path, f"environment variable {name} is not set "
                                        f"(used by {_show_path(path)})", f"export {name}=..."))
                return ""
            if not_utf8(env[name]):  # which nothing can send
                doc.missing_env_paths.add(path)  # (no second issue for the value it leaves empty)
                issues.append(doc.issue(path, f"environment variable {name} is not valid UTF-8 "
                                        f"(used by {_show_path(path)})", f"export {name} as UTF-8 text"))
                return ""
            doc.env_values.append(env[name])
            redaction.register(env[name], min_chars=ENV_SECRET_MIN_CHARS)
            return env[name]

        return ENV_REF.sub(replace, text)

    try:
        doc.data = walk(doc.data, ())
    finally:  # a nested function that calls itself is a cycle (it, its cell), which kept the document,
        del walk  # the environment and the issues after each load until a full collection
    return issues


def not_utf8(text: str) -> bool:
    """Whether `text` holds bytes that were not UTF-8 (os.environ and os.fsdecode keep them as
    surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _show_path(path: Iterable[Any]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (("." if text else "") + str(part))
    return text or "(document)"


def did_you_mean(word: Any, choices: Iterable[str]) -> str | None:
    """'did you mean X?' for the closest choice (case aside: `DuckDB` is close to `duckdb`), or None."""
    by_lower = {}
    for choice in choices:
        by_lower.setdefault(str(choice).lower(), choice)
    close = difflib.get_close_matches(str(word).lower(), list(by_lower), n=1, cutoff=0.6)
    return f"did you mean '{by_lower[close[0]]}'?" if close else None


# the choices a hint lists at most (a project of 300 syncs and 150 models: a typo's hint was 5 KB)
LISTED_CHOICES = 20


def listing(choices: Iterable[str], what: str) -> str:
    """`what: a, b, c`, the first LISTED_CHOICES in order and how many more."""
    choices = sorted(choices)
    more = len(choices) - LISTED_CHOICES
    return f"{what}: {', '.join(choices[:LISTED_CHOICES])}" + (f" and {more} more" if more > 0 else "")


def choice_hint(word: Any, choices: Iterable[str], what: str = "valid values") -> str:
    """A did-you-mean when there is a close choice, plus the list of choices."""
    choices = sorted(choices)
    listing_ = listing(choices, what) if choices else f"no {what} defined"
    close = did_you_mean(word, choices)
    return f"{close} {listing_}" if close else listing_


# --- pydantic errors -> issues ---------------------------------------------------------------

def validation_issues(
    exc: ValidationError,
    doc: YamlDoc,
    prefix: KeyPath,
    model: type[BaseModel],
    extra_keys: Iterable[str] = (),
) -> list[ConfigIssue]:
    """Turn a pydantic error for the data at `prefix` of `doc` into located issues.

    `model` is the model that was validated (to list allowed keys for unknown ones);
    `extra_keys` are keys accepted at its top level besides its fields.
    """
    issues = []
    for error in exc.errors(include_url=False):
        loc = tuple(p for p in error["loc"] if p != "[key]")
        path = prefix + loc
        if any(path[: len(m)] == m for m in doc.missing_env_paths):
            continue  # already reported as a missing environment variable
        issues.append(_issue_for(error, doc, path, loc, model, tuple(extra_keys)))
    return issues


def _issue_for(error: dict, doc: YamlDoc, path: KeyPath, loc: KeyPath, model, extra_keys) -> ConfigIssue:
    kind = error["type"]
    where = _show_path(doc.as_written(path))
    from_env = any(path[: len(p)] == p for p in doc.env_paths)
    if kind == "missing":
        return doc.issue(path[:-1], f"missing required key {where}", f"add `{path[-1]}:` here")
    if "input" in error and error["input"] is None and (kind.endswith("_type") or kind in ("literal_error", "enum")):
        # `model:` with nothing after the colon (YAML's null): not "a valid string (hint: quote the
        # value)" nor "invalid value None"
        return doc.issue(path, f"{where} has no value", "write the value after the colon (nothing there is null)")
    if kind == "extra_forbidden":
        allowed = set(_fields_at(model, loc[:-1]))
        if len(loc) == 1:
            allowed |= set(extra_keys)
        return doc.issue(path, f"unknown key {where}", choice_hint(path[-1], allowed, "allowed keys"))
    if kind in ("literal_error", "enum"):
        shown = "" if from_env else f" {_short(error.get('input'))}"
        expected = error.get("ctx", {}).get("expected", "")
        return doc.issue(path, f"{where}: invalid value{shown}", f"expected {expected}")
    if kind == "model_type":  # pydantic says "a valid dictionary or instance of MatchSpec"
        got = "" if from_env else f", got {_described(error.get('input'))}"
        named = _model_named(model, error.get("ctx", {}).get("class_name"))
        example = getattr(named, "example", None)
        expected = getattr(named, "expected", "a mapping of `key: value` lines")  # a model that also takes text says so
        return doc.issue(path, f"{where}: expected {expected}{got}",
                         f"write e.g. {example}" if example else _HINTS[kind])
    words = PATTERN_WORDS.get(error.get("ctx", {}).get("pattern")) if kind == "string_pattern_mismatch" else None
    if words:
        shown = "the value" if from_env else _short(error.get("input"))
        return doc.issue(path, f"{where}: {shown} is not allowed: {words}")
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    return doc.issue(path, f"{where}: {message}", _HINTS.get(kind))


# a pydantic `pattern` -> what it allows, in words (filled by the models that declare patterns)
PATTERN_WORDS: dict[str, str] = {}

_HINTS = {
    "string_type": "quote the value",
    "dict_type": "expected a mapping of `key: value` lines",
    "model_type": "expected a mapping of `key: value` lines",
    "list_type": "expected a list of `- item` lines",
    "int_parsing": "expected a whole number",
    "float_parsing": "expected a number",
    "bool_parsing": "expected true or false",
}


def _described(value: Any) -> str:
    if isinstance(value, str):
        return f"the text {_short(value)}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"the number {value}"
    if value is None:
        return "nothing"
    return {list: "a list", bool: f"{str(value).lower()}"}.get(type(value), type(value).__name__)


def _model_named(model: Any, name: Any) -> type[BaseModel] | None:
    """The pydantic model called `name` among `model` and the models its fields hold, at any depth."""
    seen, todo = set(), [model]
    while todo:
        tp = todo.pop()
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            if tp in seen:
                continue
            seen.add(tp)
            if tp.__name__ == name:
                return tp
            todo += [info.annotation for info in tp.model_fields.values()]
        else:
            todo += list(typing.get_args(tp))
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _fields_at(model: Any, loc: KeyPath) -> list[str]:
    """Keys of the pydantic model reached from `model` by following `loc`, as the file writes them:
    a field's alias where it has one (`schema`, not the Python name `schema_`)."""
    tp = model
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            info = _keys_of(tp).get(part) if isinstance(part, str) else None
            if info is None:
                return []
            tp = info.annotation
        else:
            args = typing.get_args(tp)
            tp = args[-1] if args else None
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return list(_keys_of(tp))
    return []


def _keys_of(model: type[BaseModel]) -> dict[str, Any]:
    """A model's fields by the key a file gives them (alias, else name)."""
    return {info.alias or name: info for name, info in model.model_fields.items()}


def _unwrap(tp: Any) -> Any:
    """Strip Annotated and Optional / unions of one model (`X | None` -> X)."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(tp) if a is not type(None)]
            models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
            if len(members) == 1:
                tp = members[0]
            elif len(models) == 1:
                tp = models[0]
            else:
                return tp
        else:
            return tp


def scrub(issues: list[ConfigIssue], secrets: Iterable[str] = ()) -> None:
    """Defence in depth: mask secrets (the registered ones and `secrets`) left in a message or hint."""
    redaction.register(*secrets, min_chars=ENV_SECRET_MIN_CHARS)
    for issue in issues:
        issue.message = redaction.redact(issue.message)
        issue.hint = redaction.redact(issue.hint)


def read_text(path: Path, file: str) -> tuple[str | None, ConfigIssue | None]:
    """Read a UTF-8 file (without the byte order mark some editors write first: it would hide a
    model's header), or an issue saying why it cannot be read, at the line of the first bad byte."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, ConfigIssue(f"cannot read file: {exc.strerror or exc}", file, None, None)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return None, ConfigIssue(f"file is not valid UTF-8 (byte 0x{data[exc.start]:02x})", file,
                                 line, "save it as UTF-8")
    return text.replace("\r\n", "\n").replace("\r", "\n"), None  # universal newlines, as open() reads


def fs_path(text: str) -> str:
    """A path written as text (dinsync.yml, an environment value: UTF-8) as Python names the file:
    the same under a UTF-8 locale; under one whose file system encoding is Latin-1 or ASCII, the
    str whose bytes are the text's UTF-8, as the folders' names are on disk (`Équipe`)."""
    return os.fsdecode(text.encode("utf-8", "surrogateescape"))


def environ() -> Mapping[str, str]:
    """The environment, its values as the UTF-8 text they hold: under a locale whose file system
    encoding is not UTF-8 (fr_FR.ISO-8859-1, C without UTF-8 mode) Python decodes them in it, so
    `entrepôt` read as `entrepÃ´t` (another file, a wrong password) or as 'not valid UTF-8'."""
    if sys.getfilesystemencoding().lower().replace("-", "") == "utf8":
        return os.environ
    return {name: os.fsencode(value).decode("utf-8", "surrogateescape") for name, value in os.environ.items()}
