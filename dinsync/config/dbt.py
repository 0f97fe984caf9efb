"""dbt models as dinsync models: `{{ ref('name') }}` resolved through the dbt manifest.

A model file may read dbt models with dbt's own `ref()`:

    -- primary_key: customer_id
    -- model_type: user
    select * from {{ ref('active_customers') }}

Each `{{ ref('name') }}` (also `ref('package', 'name')` and `ref('name', v=2)`) is replaced by the
relation dbt built, read from `<dbt project>/<target path>/manifest.json`
(`nodes[...].relation_name`); the model takes the dbt models' tags (for `--select tag:...`). No
other Jinja is evaluated. The manifest must be current: a referenced node (or one upstream of it)
whose file's content no longer matches the manifest's checksum means dbt has not built what the
file now says (run `dbt build`); so does one that dbt's last run failed or skipped
(target/run_results.json, see dbt_runs.py).

Where the dbt project is: `dbt: {project_dir: ../analytics, target_path: target}` in dinsync.yml.
Without it, the dinsync project folder itself, then its parent, when it holds dbt_project.yml.
The target path: `dbt.target_path`, else $DBT_TARGET_PATH, else dbt_project.yml's `target-path`,
else `target`.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from ..errors import ConfigIssue
from .models import DbtSettings  # noqa: F401 (defined there: the config schema needs it, not this module)
from .yamlfile import fs_path

MANIFEST = "manifest.json"
REF_TYPES = ("model", "seed", "snapshot")  # what dbt's ref() may point at

# {{ ref('name') }}, {{ ref("pkg", "name") }}, {{ ref('name', v=2) }} / version=2
_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)
_REF = re.compile(
    r"""\{\{-?\s*ref\(\s*(?P<q1>['"])(?P<a>[^'"]+)(?P=q1)\s*"""
    r"""(?:,\s*(?P<q2>['"])(?P<b>[^'"]+)(?P=q2)\s*)?"""
    r"""(?:,\s*(?:v|version)\s*=\s*(?P<q3>['"]?)(?P<v>[\w.]+)(?P=q3)\s*)?\)\s*-?\}\}""", re.S)


@dataclass(frozen=True)
class Ref:
    """One `{{ ref(...) }}` in a model file."""

    text: str  # as written
    name: str
    package: str | None
    version: str | None
    line: int  # 1-based line in the model file
    start: int
    end: int

    def label(self) -> str:
        args = ([repr(self.package)] if self.package else []) + [repr(self.name)]
        return "ref(" + ", ".join(args) + (f", v={self.version}" if self.version else "") + ")"


def find_refs(text: str) -> tuple[list[Ref], list[tuple[str, int]]]:
    """The refs of a model file, and any other Jinja (text, line), which dinsync does not run."""
    refs, other = [], []
    literals = None
    for m in _JINJA.finditer(text):
        if literals is None:
            literals = _string_literals(text)
        value = m.group(0).startswith("{{") and _inside(literals, m.start(), m.end())
        if value and not _parses_as_jinja(m.group(0)):
            continue  # a value's text ('{{1,2},{3,4}}': PostgreSQL's form of a 2-D array), not Jinja
        line = text.count("\n", 0, m.start()) + 1
        r = _REF.fullmatch(m.group(0))
        if r is None:
            other.append((m.group(0), line))
            continue
        package, name = (r["a"], r["b"]) if r["b"] else (None, r["a"])
        refs.append(Ref(m.group(0), name, package, r["v"], line, m.start(), m.end()))
    return refs, other


# the start of a string literal (standard, E'' with backslash escapes, $tag$ dollar-quoted), a
# quoted identifier, a comment, or Jinja (skipped whole: its own quotes open no literal)
_LEXEME = re.compile(r"""(?:(?<![\w$])(?P<e>[eE]))?'|"|--|/\*|(?<![\w$])\$(?P<tag>[A-Za-z_]\w*)?\$|\{[{%#]""")


def _string_literals(sql: str) -> list[tuple[int, int]]:
    """The (start, end) of the contents of each SQL string literal of `sql`, outside comments."""
    spans, i = [], 0
    while (m := _LEXEME.search(sql, i)) is not None:
        token, start = m.group(0), m.end()
        if token.endswith("'"):
            escape = r"\\." if m.group("e") else "(?!)"
            close = re.compile(rf"(?:''|{escape}|[^'])*", re.S).match(sql, start).end()
            spans.append((start, close))
            i = close + 1
        elif token == '"':
            i = sql.find('"', start) + 1 or len(sql)
        elif token == "--":
            i = sql.find("\n", start) + 1 or len(sql)
        elif token == "/*":
            i = sql.find("*/", start) + 2 if sql.find("*/", start) >= 0 else len(sql)
        elif token.startswith("$"):
            close = sql.find(token, start)
            close = len(sql) if close < 0 else close
            spans.append((start, close))
            i = close + len(token)
        else:  # Jinja
            jinja = _JINJA.match(sql, m.start())
            i = jinja.end() if jinja else m.start() + 2
    return spans


def _inside(spans: list[tuple[int, int]], start: int, end: int) -> bool:
    return any(a <= start and end <= b for a, b in spans)


def _parses_as_jinja(text: str) -> bool:
    """Whether Jinja reads `text` (one `{{ ... }}`) as an expression: it cannot read an
    array's text, `{{1,2},{3,4}}` (`}` before the `}}` that would end it), which dbt leaves as it is."""
    import jinja2

    try:
        jinja2.Environment().parse(text)
    except jinja2.TemplateSyntaxError:
        return False
    return True


@dataclass
class Node:
    """What dinsync needs of a manifest node."""

    unique_id: str
    name: str
    resource_type: str
    package: str
    relation: str | None
    materialized: str | None
    tags: list[str]
    file: str  # original_file_path, relative to its package
    checksum: dict
    upstream: list[str]
    version: str | None
    latest_version: str | None
    primary_key: list[str]
    macros: list[str] = field(default_factory=list)  # the macros its SQL calls


@dataclass
class Macro:
    """A macro of the manifest: its text as dbt read it from its file (`macro_sql`)."""

    name: str
    package: str
    file: str
    sql: str
    macros: list[str]  # the macros it calls


@dataclass
class Manifest:
    path: Path
    project_name: str
    generated_at: str | None
    adapter_type: str | None
    nodes: dict[str, Node]
    disabled: dict[str, list[str]]  # name -> unique ids of disabled nodes
    tests: dict[str, tuple[str, list[str]]] = field(default_factory=dict)  # data test id -> (name, nodes tested)
    macros: dict[str, Macro] = field(default_factory=dict)
    _by_name: dict[str, list[Node]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for node in self.nodes.values():
            self._by_name.setdefault(node.name, []).append(node)

    @classmethod
    def read(cls, path: Path) -> "Manifest":
        import orjson

        data = orjson.loads(path.read_bytes())
        meta = data.get("metadata") or {}
        nodes, tests = {}, {}
        tested = _tested_columns(data.get("nodes") or {})
        for uid, raw in (data.get("nodes") or {}).items():
            if raw.get("resource_type") == "test":
                tests[uid] = (raw.get("name") or uid, list((raw.get("depends_on") or {}).get("nodes") or []))
            if raw.get("resource_type") not in REF_TYPES:
                continue
            nodes[uid] = Node(
                unique_id=uid, name=raw.get("name") or "", resource_type=raw["resource_type"],
                package=raw.get("package_name") or "", relation=raw.get("relation_name"),
                materialized=(raw.get("config") or {}).get("materialized"), tags=list(raw.get("tags") or []),
                file=raw.get("original_file_path") or "", checksum=dict(raw.get("checksum") or {}),
                upstream=list((raw.get("depends_on") or {}).get("nodes") or []),
                version=None if raw.get("version") is None else str(raw["version"]),
                latest_version=None if raw.get("latest_version") is None else str(raw["latest_version"]),
                primary_key=_key_of(raw, tested.get(uid, {})),
                macros=list((raw.get("depends_on") or {}).get("macros") or []))
        macros = {uid: Macro(raw.get("name") or uid, raw.get("package_name") or "", raw.get("original_file_path") or "",
                             raw.get("macro_sql") or "", list((raw.get("depends_on") or {}).get("macros") or []))
                  for uid, raw in (data.get("macros") or {}).items()}
        disabled: dict[str, list[str]] = {}
        for uid, entries in (data.get("disabled") or {}).items():
            for raw in entries or []:
                if raw.get("resource_type") in REF_TYPES:
                    disabled.setdefault(raw.get("name") or "", []).append(uid)
        return cls(path=path, project_name=meta.get("project_name") or "", generated_at=meta.get("generated_at"),
                   adapter_type=meta.get("adapter_type"), nodes=nodes, disabled=disabled, tests=tests, macros=macros)

    def upstream(self, uid: str, through: Callable[[Node], bool] = lambda node: True) -> Iterator[str]:
        """`uid` and what it reads, each once, depth first; a node's inputs are followed when
        `through(node)` (always by default). Ids that are not nodes here (sources) are yielded, not
        followed."""
        seen, todo = set(), [uid]
        while todo:
            uid = todo.pop()
            if uid in seen:
                continue
            seen.add(uid)
            yield uid
            node = self.nodes.get(uid)
            if node is not None and through(node):
                todo += node.upstream

    def candidates(self, ref: Ref) -> list[Node]:
        found = [n for n in self._by_name.get(ref.name, []) if ref.package in (None, n.package)]
        if ref.version is not None:
            return [n for n in found if n.version == ref.version]
        versioned = [n for n in found if n.version is not None]
        if versioned:  # dbt's ref() without a version reads the latest one
            found = [n for n in found if n.version is None or n.version == n.latest_version]
        if len(found) > 1 and ref.package is None:  # the root project's own node wins, like dbt
            own = [n for n in found if n.package == self.project_name]
            found = own or found
        return found


_cache: dict[tuple[str, int, int], Manifest] = {}


def read_manifest(path: Path) -> Manifest:
    """The manifest at `path`, parsed once per version of the file (a long-lived process using the
    Python API reads it again after each `dbt build`)."""
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    manifest = _cache.get(key)
    if manifest is None:
        manifest = Manifest.read(path)
        _cache.clear()
        _cache[key] = manifest
    return manifest


@dataclass
class Resolved:
    """A model file's SQL with its refs replaced, and what it read from dbt."""

    sql: str
    dbt_models: list[str]  # names of the dbt nodes it reads
    tags: list[str]
    primary_key: str | None  # the dbt model's single-column primary key, when it reads exactly one
    composite_key: tuple[str, ...] = ()  # the key of the one dbt model it reads, when it has several columns


class DbtProject:
    """The dbt project a dinsync project reads (located lazily: only models with refs need it)."""

    def __init__(self, root: Path, settings: DbtSettings | None, settings_line: int | None,
                 env: Any = None):
        self.root = root
        self.settings = settings
        self.settings_line = settings_line
        self.env = os.environ if env is None else env
        self._located: tuple[Path | None, Path | None, ConfigIssue | None] | None = None
        self._target_from = ""  # where the manifest's folder came from (dinsync.yml, the environment, dbt)
        self._manifest: Manifest | None = None
        self._manifest_issue_shown = False
        # model file -> (dbt node names, tags) of the refs found in the manifest, for a file whose
        # refs did not all resolve (stale, not built): what selection by `model:`/`tag:` reads
        self.partial: dict[str, tuple[list[str], list[str]]] = {}

    @property
    def loaded_manifest(self) -> Manifest | None:
        """The manifest, if a model needed it and it could be read."""
        return self._manifest

    # --- where -----------------------------------------------------------------------
    def _locate(self, file: str, line: int) -> tuple[Path | None, Path | None, ConfigIssue | None]:
        """(dbt project dir, manifest path, issue)."""
        if self._located is not None:
            return self._located
        if self.settings is not None:
            project_dir = (self.root / os.path.expanduser(fs_path(self.settings.project_dir))).resolve()  # `~`: home
            where = ("dinsync.yml", self.settings_line)
            if not (project_dir / "dbt_project.yml").is_file():
                self._located = (None, None, ConfigIssue(
                    f"dbt.project_dir {self.settings.project_dir} holds no dbt_project.yml ({project_dir})", *where,
                    "point dbt.project_dir at the folder of your dbt project (relative to this file)"))
                return self._located
        else:
            project_dir = next((d for d in (self.root, self.root.parent) if (d / "dbt_project.yml").is_file()), None)
            if project_dir is None:
                self._located = (None, None, ConfigIssue(
                    "this model reads a dbt model, but no dbt project was found (no dbt_project.yml here or in "
                    "the parent folder)", file, line,
                    "add `dbt: {project_dir: ../your_dbt_project}` to dinsync.yml"))
                return self._located
        for target, self._target_from in (
                (self.settings.target_path if self.settings else None, "dbt.target_path in dinsync.yml"),
                (self.env.get("DBT_TARGET_PATH"), "$DBT_TARGET_PATH"),
                (_target_path_of(project_dir), "target-path in dbt_project.yml"), ("target", "dbt's default")):
            if target:
                break
        self._located = (project_dir, (project_dir / fs_path(target) / MANIFEST).resolve(), None)
        return self._located

    def manifest(self, file: str, line: int) -> tuple[Manifest | None, ConfigIssue | None]:
        """The manifest, or the issue saying why it cannot be read (reported once per load)."""
        if self._manifest is not None:
            return self._manifest, None
        project_dir, path, issue = self._locate(file, line)
        if issue is None:
            rel = os.path.relpath(path, self.root)
            if not path.is_file():
                issue = ConfigIssue(
                    f"the dbt manifest {rel} does not exist", file, line,
                    f"run `dbt parse` or `dbt build` in {os.path.relpath(project_dir, self.root)} first "
                    f"(dinsync reads the relations dbt built from {os.path.relpath(path.parent, project_dir.resolve())}"
                    f"/{MANIFEST}: {self._target_from})")
            else:
                try:
                    self._manifest = read_manifest(path)
                    return self._manifest, None
                except (OSError, ValueError, AttributeError, TypeError, KeyError) as exc:
                    import orjson

                    why = str(exc) if isinstance(exc, (OSError, orjson.JSONDecodeError)) else (
                        f"it is not shaped as dbt writes a manifest ({type(exc).__name__}: {exc})")
                    rewrite = "run `dbt parse` or `dbt build` again to rewrite it"
                    if isinstance(exc, orjson.JSONDecodeError):  # empty or cut short, as while dbt writes it
                        rewrite = ("dbt writes it in place at the start of a command: if a dbt command is writing it "
                                   f"now, run dinsync once it has finished; otherwise {rewrite}")
                    issue = ConfigIssue(f"the dbt manifest {rel} cannot be read: {why}", file, line, rewrite)
        if self._manifest_issue_shown:
            return None, None
        self._manifest_issue_shown = True
        return None, issue

    # --- resolution ------------------------------------------------------------------
    def resolve(self, text: str, file: str, refs: list[Ref]) -> tuple[Resolved | None, list[ConfigIssue]]:
        manifest, issue = self.manifest(file, refs[0].line)
        if manifest is None:
            return None, [issue] if issue else []
        project_dir = self._located[0]
        issues: list[ConfigIssue] = []
        nodes: list[Node] = []
        known: list[Node] = []  # found in the manifest, whether usable or not
        for ref in refs:
            node, problem = self._node(manifest, ref, file)
            if problem:
                issues.append(problem)
                continue
            known.append(node)
            stale = self._stale(manifest, node, project_dir)
            if stale:
                issues.append(ConfigIssue(
                    f"{ref.label()}: the dbt manifest (generated {manifest.generated_at or '?'}) is stale: {stale}",
                    file, ref.line,
                    "run `dbt build` so that the relation dinsync reads matches the dbt project's files"))
                continue
            failed = self._not_built(manifest, node)
            if failed:
                issues.append(ConfigIssue(f"{ref.label()}: {failed[0]}", file, ref.line, failed[1]))
                continue
            nodes.append(node)
        if issues:
            self.partial[file] = (list(dict.fromkeys(n.name for n in known)), sorted({t for n in known for t in n.tags}))
            return None, issues
        sql, offset = [], 0
        for ref, node in zip(refs, nodes):  # a ref over several lines keeps them: errors' LINE n stay the file's
            sql += [text[offset:ref.start], node.relation + "\n" * ref.text.count("\n")]
            offset = ref.end
        sql.append(text[offset:])
        tags = sorted({t for n in nodes for t in n.tags})
        names = list(dict.fromkeys(n.name for n in nodes))
        single = len({n.unique_id for n in nodes}) == 1 and len(nodes[0].primary_key) == 1
        primary_key = nodes[0].primary_key[0] if single else None
        one_node = len({n.unique_id for n in nodes}) == 1
        composite = tuple(nodes[0].primary_key) if one_node and len(nodes[0].primary_key) > 1 else ()
        return Resolved("".join(sql), names, tags, primary_key, composite), []

    def _node(self, manifest: Manifest, ref: Ref, file: str) -> tuple[Node | None, ConfigIssue | None]:
        found = manifest.candidates(ref)
        if len(found) > 1:
            return None, ConfigIssue(f"{ref.label()} is ambiguous: " + ", ".join(n.unique_id for n in found),
                                     file, ref.line, "name the package: ref('package', 'model')")
        named = manifest._by_name.get(ref.name, [])
        if not found and named:  # the name exists: the package or the version does not match
            packages = sorted({n.package for n in named})
            if ref.package is not None and ref.package not in packages:
                return None, ConfigIssue(f"{ref.label()}: no dbt model {ref.name!r} in package {ref.package!r}",
                                         file, ref.line, f"it is in {', '.join(packages)}: ref('{packages[0]}', "
                                         f"'{ref.name}'), or ref('{ref.name}')")
            versions = sorted({n.version for n in named if n.version is not None})
            return None, ConfigIssue(f"{ref.label()}: the dbt model {ref.name} has no version {ref.version}", file,
                                     ref.line, f"versions: {', '.join(versions) or 'none (an unversioned model)'}; "
                                     "if you just added it, run `dbt parse` or `dbt build`")
        disabled = [uid for uid in manifest.disabled.get(ref.name, [])
                    if ref.package is None or uid.split(".")[1:2] == [ref.package]]
        if not found:
            if disabled:
                return None, ConfigIssue(f"{ref.label()}: the dbt model {ref.name} is disabled (enabled: false)",
                                         file, ref.line, "enable it in the dbt project and run `dbt build`, or "
                                         "read another model")
            from .yamlfile import did_you_mean

            close = did_you_mean(ref.name, sorted({n.name for n in manifest.nodes.values()}))
            return None, ConfigIssue(
                f"{ref.label()}: no dbt model {ref.name!r} in the manifest "
                f"({os.path.relpath(manifest.path, self.root)}, generated {manifest.generated_at or '?'})",
                file, ref.line, (close + " " if close else "") + "if you just added it, run `dbt parse` or "
                "`dbt build` so that the manifest lists it")
        node = found[0]
        if node.materialized == "ephemeral" or not node.relation:
            return None, ConfigIssue(
                f"{ref.label()}: the dbt model {node.name} is ephemeral, so dbt builds no relation for it", file,
                ref.line, "materialize it as a view or table (`{{ config(materialized='view') }}`), or read the "
                "models it selects from")
        return node, None

    def _not_built(self, manifest: Manifest, node: Node) -> tuple[str, str] | None:
        """Why dbt's last run left the node's relation as it was: it (or a node upstream of it)
        failed or was skipped (target/run_results.json); or why dbt would not build what reads it:
        a data test of it (or of what it reads) failed, and `dbt build` skips what is downstream of
        a failed test (a test of several models: only what reads all of them)."""
        from .dbt_runs import RESULTS, read_run_results

        results = read_run_results(manifest.path.parent)
        if results is not None and results.unreadable is not None:
            where = os.path.relpath(manifest.path.parent / RESULTS, self.root)
            return (f"dbt's last results ({where}) cannot be read ({results.unreadable}): whether dbt built "
                    f"dbt {node.resource_type} {_label(node)} is unknown",
                    "dbt writes the file at the end of a command: if dbt is writing it now, run dinsync once dbt "
                    "has finished; otherwise run `dbt build` again to rewrite it")
        if results is None or not results.failed:
            return None
        seen = set(manifest.upstream(node.unique_id))  # with the sources it reads, whose tests count too
        # a model built with --empty/--sample holds no rows (a sample): so does a view reading it
        live = {uid for uid in manifest.upstream(node.unique_id, lambda n: n.materialized in ("view", "ephemeral"))
                if uid in manifest.nodes}
        found = [uid for uid in seen if uid in results.failed and uid in manifest.nodes
                 and (results.failed[uid][0] not in ("empty", "sample") or uid in live)]
        found += [uid for uid, (_, tested) in manifest.tests.items()
                  if uid in results.failed and results.failed[uid][0] != "skipped" and tested and set(tested) <= seen]
        if not found:
            return None
        # the failure rather than what it skipped, the node's own before what it reads
        uid = min(sorted(found), key=lambda u: (results.failed[u][0] == "skipped", u != node.unique_id))
        if uid in manifest.tests:
            name, tested = manifest.tests[uid]
            # a source's test too (`source.<package>.<source>.<table>` is no node): "source crm.customers"
            of = ", ".join(_label(manifest.nodes[t]) if t in manifest.nodes else
                           " ".join([t.split(".")[0], ".".join(t.split(".")[2:])]) for t in tested)
            subject = f"dbt test {name} of {of}" + ("" if node.unique_id in tested else f", upstream of {_label(node)}")
            return (results.describe(uid, subject) + " (`dbt build` skips what reads a model whose test failed)",
                    "fix the data or the test and run `dbt build` again (a test that should not block: "
                    "`severity: warn`)")
        n = manifest.nodes[uid]
        reason = results.describe(uid, f"dbt {n.resource_type} {_label(n)}"
                                  + ("" if uid == node.unique_id else f", upstream of {_label(node)}"))
        if results.failed[uid][0] in ("empty", "sample"):
            return reason, ("run `dbt build` without --empty or --sample before syncing: dinsync would take the "
                            "missing rows for rows that left the model")
        if results.failed[uid][0] == "partial success":
            return reason, ("run `dbt retry` (it builds the failed batches again) or `dbt build`: dinsync would take "
                            "the missing rows for rows that left the model")
        return reason, ("fix what dbt reported and run `dbt build` again: until then the relation in the "
                        "warehouse is not what the dbt project's files say")

    def _stale(self, manifest: Manifest, node: Node, project_dir: Path) -> str | None:
        """Why the built relation may not match the dbt project's files: a file of the node, or of
        a node upstream of it (in the project or in a package it installed), whose content differs
        from the manifest; or a macro their SQL calls (`{{ cents_to_dollars('amount') }}`) whose
        text is no longer in its file (dbt builds what the macro said)."""
        macros: list[str] = []
        for uid in manifest.upstream(node.unique_id):
            n = manifest.nodes.get(uid)
            macros += n.macros if n is not None else []
            if n is None or n.checksum.get("name") != "sha256" or not n.file:
                continue
            shown, text = self._file_of(manifest, n.package, n.file, project_dir)
            if text is None:
                return f"{shown} (dbt {n.resource_type} {n.name}) was deleted"
            if text is False or hashlib.sha256(text.strip().encode("utf-8")).hexdigest() == n.checksum.get("checksum"):
                continue
            return f"{shown} (dbt {n.resource_type} {n.name}) changed since ({_modified(project_dir / shown)})"
        seen: set[str] = set()
        while macros:
            uid = macros.pop()
            macro = manifest.macros.get(uid)
            if uid in seen or macro is None or not macro.file or not macro.sql:
                continue
            seen.add(uid)
            macros += macro.macros
            shown, text = self._file_of(manifest, macro.package, macro.file, project_dir)
            if text is None:
                return f"{shown} (dbt macro {macro.name}) was deleted"
            if isinstance(text, str) and macro.sql not in text:
                return f"{shown} (dbt macro {macro.name}) changed since ({_modified(project_dir / shown)})"
        return None

    def _file_of(self, manifest: Manifest, package: str, file: str, project_dir: Path) -> tuple[str, str | bool | None]:
        """(the file as shown, its text) of a file of the project or of a package `dbt deps`
        installed (or linked); text None: deleted, False: not readable. ("", False): a package not
        installed here (dbt's own macros, say), not checked."""
        shown = file
        if package != manifest.project_name:  # a package's file, where `dbt deps` put it (or linked it)
            installed = self.__dict__.get("_installed") or _project_setting(
                project_dir, "packages-install-path", "dbt_packages")
            self._installed = installed
            if not (project_dir / installed / package).is_dir():
                return "", False
            shown = f"{installed}/{package}/{file}"
        try:  # bytes as dbt reads them: read_text() would turn CRLF into LF and change the hash
            return shown, (project_dir / shown).read_bytes().decode("utf-8")
        except FileNotFoundError:
            return shown, None
        except (OSError, UnicodeDecodeError):
            return shown, False


def _modified(path: Path) -> str:
    try:
        modified = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.timezone.utc)
    except OSError:
        return "modified ?"
    return f"modified {modified.isoformat(timespec='seconds').replace('+00:00', 'Z')}"


KEY_TESTS = {"unique": "unique", "unique_combination_of_columns": "unique", "not_null": "not_null"}


def _tested_columns(raw_nodes: dict) -> dict[str, dict[str, set[str]]]:
    """node id -> column -> the key tests (`unique`, `not_null`) the manifest holds enabled on that
    column alone (a disabled test is in `disabled`, not among the nodes)."""
    found: dict[str, dict[str, set[str]]] = {}
    for raw in raw_nodes.values():
        meta = raw.get("test_metadata") if raw.get("resource_type") == "test" else None
        kind = KEY_TESTS.get(meta.get("name")) if isinstance(meta, dict) else None
        kwargs = meta.get("kwargs") if kind else None
        depends = (raw.get("depends_on") or {}).get("nodes") or []
        node = raw.get("attached_node") or (depends[0] if len(depends) == 1 else None)  # (no attached_node: v10)
        if not isinstance(kwargs, dict) or not isinstance(node, str):
            continue
        column = kwargs.get("column_name") or kwargs.get("combination_of_columns")
        column = column[0] if isinstance(column, list) and len(column) == 1 else column
        if isinstance(column, str):
            found.setdefault(node, {}).setdefault(column, set()).add(kind)
    return found


def _key_of(raw: dict, tested: dict[str, set[str]]) -> list[str]:
    """The node's `primary_key` when a primary_key constraint or enabled `unique` and `not_null`
    tests make it one. dbt also infers it from a `unique` test alone, or a disabled one (turned off
    because it failed?): no key then, and the model file says its own. Manifests before v12 (dbt <
    1.8) hold no `primary_key`: the key is then the constraint's, or the one column so tested."""
    constraints = [c for c in raw.get("constraints") or [] if isinstance(c, dict)]
    columns = raw.get("columns") if isinstance(raw.get("columns"), dict) else {}
    key = raw.get("primary_key")
    if key is None and raw.get("resource_type") == "model":
        key = next((c.get("columns") for c in constraints if c.get("type") == "primary_key"), None) or [
            c for c, info in columns.items() if isinstance(info, dict)
            and any(isinstance(k, dict) and k.get("type") == "primary_key" for k in info.get("constraints") or [])]
        key = key or [c for c, kinds in tested.items() if kinds >= {"unique", "not_null"}]
    key = [c for c in key or [] if isinstance(c, str)]
    if any(c.get("type") == "primary_key" and c.get("columns") == key for c in constraints):
        return key
    if len(key) == 1 and any(isinstance(c, dict) and c.get("type") == "primary_key"
                             for c in (columns.get(key[0]) or {}).get("constraints") or []):
        return key
    return key if key and all(tested.get(c, set()) >= {"unique", "not_null"} for c in key) else []


def _label(node: Node) -> str:
    """A node's name as dbt prints it: `fct_ltv.v2` for a version of a versioned model."""
    return node.name + (f".v{node.version}" if node.version is not None else "")


def _target_path_of(project_dir: Path) -> str | None:
    """`target-path` of dbt_project.yml, when set (dbt >= 1.5 prefers the flag or DBT_TARGET_PATH)."""
    return _project_setting(project_dir, "target-path")


def dbt_model_paths(folder: Path) -> list[str]:
    """The model folders of the dbt project in `folder` (`model-paths`, default `models`), as
    relative paths without `./` or a trailing `/`; [] where `folder` holds no dbt_project.yml."""
    import yaml

    try:
        data = yaml.safe_load((folder / "dbt_project.yml").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        data = None
    paths = data.get("model-paths", data.get("source-paths")) if isinstance(data, dict) else None
    paths = paths if isinstance(paths, list) and paths else ["models"]
    return [os.path.normpath(p) for p in paths if isinstance(p, str)]


def _project_setting(project_dir: Path, key: str, default: str | None = None) -> str | None:
    """A path setting of dbt_project.yml (`target-path`, `packages-install-path`), when set as text."""
    import yaml

    try:
        data = yaml.safe_load((project_dir / "dbt_project.yml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return default
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, str) and value and "{{" not in value else default


def resolve_model(dbt: DbtProject, text: str, file: str) -> tuple[Resolved | None, list[ConfigIssue], bool]:
    """Resolve the refs of a model file: (resolved, issues, ok). Without refs: (None, [], True).
    Not ok with no issue: the manifest's problem was reported for an earlier model."""
    refs, other = find_refs(text)
    issues = [ConfigIssue(f"unsupported Jinja {_short(t)}", file, line,
                          "dinsync resolves only {{ ref('model') }}; move other Jinja into a dbt model"
                          + (_ARRAY_HINT if _ARRAY_LIKE.fullmatch(t) else ""))
              for t, line in other]
    if issues or not refs:
        return None, issues, not issues
    resolved, issues = dbt.resolve(text, file, refs)
    return resolved, issues, resolved is not None


# `{{1}}`, `{{a,b}}`: Jinja that is also an array's text in PostgreSQL's form, as a literal would hold it
_ARRAY_LIKE = re.compile(r"\{\{[^\s(){}][^(){}]*\}\}")
_ARRAY_HINT = ("; if it is an array's text in a string literal, write it with a space, '{ {1} }', "
               "or as ARRAY[[1]]")


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 60 else text[:57] + "..."
