"""Reading models/: each `.sql` file's header comments (`-- primary_key:`, `-- model_type:`),
its dbt refs resolved, and its single SELECT statement.

`_ModelFiles` is the part of the loader (`loader._Loader`) that reads the model files; the
statement is found without a SQL tokenizer when the text is simple (`_single_statement`), so that
loading a project does not import sqlglot, and a model that writes instead of selecting rows is
refused before the warehouse sees it.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import ConfigIssue
from .models import Model
from .project_files import PROJECT_FILE, _files
from .yamlfile import choice_hint, did_you_mean, read_text

HEADER_KEYS = ("primary_key", "model_type")
MODEL_TYPES = ("user", "custom")
# a model's statement that writes (or sets up the session) instead of selecting rows
_WRITE_VERB = re.compile(r"\(*\s*(insert|update|delete|merge|create|drop|alter|truncate|grant|revoke|copy|call|"
                         r"attach|detach|install|load|set|pragma|export|import|vacuum|checkpoint|begin|commit)\b",
                         re.IGNORECASE)
_HEADER_LINE = re.compile(r"^\s*--\s*([A-Za-z_][A-Za-z0-9_-]*)\s*:\s*(.*?)\s*$")


class _ModelFiles:
    """The models/ part of one load (`loader._Loader`): its issues and models go to the load's."""

    # --- models --------------------------------------------------------------------------
    def load_models(self) -> None:
        self.check_folder("models", ".sql files, one per model (the file name is the model name)")
        folder = self.root / "models"
        # dinsync.yml beside dbt_project.yml: one folder (models/ is read at any depth), two tools.
        # (dinsync.config.dbt is imported only where there is one: 21M instructions, ~5 ms of every
        # command's start-up otherwise.)
        if (self.root / "dbt_project.yml").exists():
            from .dbt import dbt_model_paths

            if any(p == "models" or p.startswith("models" + os.sep) for p in dbt_model_paths(self.root)):
                self.issues.append(ConfigIssue(
                    "models/ is the dbt project's model folder (dbt_project.yml here): dinsync would read dbt's "
                    "models as its own", "dbt_project.yml", None, "keep the dinsync project in a folder of its own "
                    "inside the dbt project (dinsync.yml, models/, syncs/ in e.g. activation/: the dbt project is "
                    "found in its parent folder)"))
                return
        first: dict[str, str] = {}
        for path in _files(folder, "*.sql"):
            file, name = self.rel(path), path.stem
            if not self._check_name(name, file, "model"):
                continue
            if name.lower() in first:
                self.issues.append(ConfigIssue(f"duplicate model name {name!r} (also {first[name.lower()]})",
                                               file, 1, "model names must be unique; rename one of the files"))
                continue
            first[name.lower()] = file
            self.model_names.add(name)
            text, problem = read_text(path, file)
            if problem:
                self.issues.append(problem)
                continue
            model = self._parse_model(name, path, file, text)
            if model is not None:
                self.models[name] = model

    def _parse_model(self, name: str, path: Path, file: str, text: str) -> Model | None:
        issues: list[ConfigIssue] = []
        header: dict[str, tuple[str, int]] = {}
        lines = text.splitlines()
        body_line = len(lines) + 1
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            if not line.strip().startswith("--"):
                body_line = number
                break
            match = _HEADER_LINE.match(line)
            if not match:
                continue
            key, value = match.groups()
            if key in HEADER_KEYS:
                if key in header:
                    issues.append(ConfigIssue(f"{key} declared twice (first on line {header[key][1]})", file, number,
                                              "keep one header line per key"))
                else:
                    header[key] = (value, number)
            elif did_you_mean(key, HEADER_KEYS):
                issues.append(ConfigIssue(f"unknown header key {key!r}", file, number,
                                          choice_hint(key, HEADER_KEYS, "header keys")))

        reads_dbt = False
        if "{{" in text or "{%" in text:  # refs to dbt models (or Jinja dinsync refuses)
            from .dbt import find_refs, resolve_model

            resolved, dbt_issues, dbt_ok = resolve_model(self.dbt, text, file)
            reads_dbt = bool(find_refs(text)[0])
        else:
            resolved, dbt_issues, dbt_ok = None, [], True
        self.dbt_issues += dbt_issues
        if self.dbt_strict:
            issues += dbt_issues
        if resolved is not None:
            text = resolved.sql
        # its refs are fine but dbt's manifest is missing, stale or says a model was not built (or
        # other Jinja beside its refs kept them from being resolved): the dbt model's primary key is
        # not known, and the issue already reported says why
        jinja_refused = any(i.message.startswith("unsupported Jinja") for i in dbt_issues)
        dbt_issues_only = not dbt_ok and (not jinja_refused or reads_dbt)
        primary_key, model_type, key_of_dbt_model = None, "custom", None
        if "primary_key" not in header and resolved is not None and resolved.primary_key:
            primary_key = resolved.primary_key  # the dbt model's (its unique + not_null tests, or constraint)
            key_of_dbt_model = resolved.dbt_models[0]
        elif "primary_key" not in header and not dbt_ok and (not self.dbt_strict or dbt_issues_only):
            primary_key = ""  # unknown until the dbt manifest can be read (not used by this command)
        elif "primary_key" not in header:
            message, hint = "missing primary key header", "start the file with `-- primary_key: <column>`"
            if resolved is not None and resolved.composite_key:
                columns = resolved.composite_key
                message += (f": the primary key of dbt model {resolved.dbt_models[0]} has {len(columns)} columns "
                            f"({', '.join(columns)}), and dinsync needs one")
                concatenated = " || '-' || ".join(columns)
                hint += (" naming a column unique on its own (composite keys are not supported), e.g. one the model"
                         f" selects as `{concatenated} as {columns[0]}_key`")
            elif resolved is not None:
                hint += " (or give the dbt model `unique` and `not_null` tests on one column)"
            issues.append(ConfigIssue(message, file, 1, hint))
        else:
            value, number = header["primary_key"]
            quoted = len(value) > 2 and value[0] == value[-1] == '"'
            primary_key = value[1:-1].replace('""', '"') if quoted else value
            if not primary_key or (not quoted and re.search(r"[\s,]", primary_key)):
                hint = "write `-- primary_key: <column>` (composite keys are not supported)"
                if primary_key and "," not in primary_key:
                    hint = f"a column name holding spaces goes in double quotes: `-- primary_key: \"{primary_key}\"`"
                issues.append(ConfigIssue(f"primary_key must name one column, got {value!r}", file, number, hint))
                primary_key = None
        if "model_type" in header:
            value, number = header["model_type"]
            if value not in MODEL_TYPES:
                issues.append(ConfigIssue(f"invalid model_type {value!r}", file, number,
                                          choice_hint(value, MODEL_TYPES, "expected one of")))
            model_type = value

        sql, sql_line = self._model_sql(text, file, issues)
        verb = _WRITE_VERB.match(sql)
        if verb:  # the warehouse would answer "syntax error at or near ..." (the model is read as a subquery)
            issues.append(ConfigIssue(f"a model is a SELECT query, not a {verb.group(1).upper()} statement", file,
                                      sql_line or body_line, "write the SELECT whose rows the syncs send; "
                                      "build tables with dbt or in the warehouse"))
        elif sql and not issues and _WRITE_WORD.search(sql):
            write = _hidden_write(sql, getattr(self.warehouse, "type", None) or "duckdb")
            if write:  # `with d as (delete ... returning *) select`: DuckDB deletes as it reads the columns
                words = [m for m in _WRITE_WORD.finditer(sql) if m.group(1).upper() == write] or [None]
                line = (sql_line or body_line) + (sql.count("\n", 0, words[0].start()) if words[0] else 0)
                article = "an" if write[0] in "AEIOU" else "a"
                issues.append(ConfigIssue(f"a model is a SELECT query, not one holding {article} {write} statement",
                                          file, line, "write the SELECT whose rows the syncs send; change data "
                                          "with dbt or in the warehouse"))
        self.issues += issues
        if issues or (not dbt_ok and self.dbt_strict):
            return None
        dbt_models, tags = (resolved.dbt_models, resolved.tags) if resolved else ((), ())
        if not dbt_ok:  # (not strict) known from the manifest as far as it goes, for `model:`/`tag:`
            self.dbt_problems[name] = dbt_issues
            dbt_models, tags = self._dbt.partial.get(file, ((), ())) if self._dbt is not None else ((), ())
        model = Model(name=name, path=path, sql=sql, primary_key=primary_key, model_type=model_type,
                      dbt_models=tuple(dbt_models), tags=tuple(tags))
        model._dbt_primary_key = key_of_dbt_model
        model._lines.update({"sql": sql_line or body_line,
                             "primary_key": header["primary_key"][1] if "primary_key" in header else 1})
        if "model_type" in header:
            model._lines["model_type"] = header["model_type"][1]
        return model

    @staticmethod
    def _model_sql(text: str, file: str, issues: list[ConfigIssue]) -> tuple[str, int | None]:
        """The single statement of a model (without its trailing semicolon) and its first line."""
        simple = _single_statement(text)
        if simple is not None:
            return simple
        from ..lazy_imports import sqlglot_modules  # only for models with `;` or `/*` inside

        sqlglot, _ = sqlglot_modules()
        Dialect, TokenType = sqlglot.Dialect, sqlglot.TokenType

        try:
            tokens = Dialect.get_or_raise("duckdb").tokenize(text)
        except Exception:  # unterminated string, ...: the warehouse reports it (check_columns)
            return text.strip().rstrip(";").strip(), None
        statements: list[list] = [[]]
        for token in tokens:
            if token.token_type == TokenType.SEMICOLON:
                statements.append([])
            else:
                statements[-1].append(token)
        statements = [s for s in statements if s]
        if not statements:
            issues.append(ConfigIssue("model SQL is empty", file, len(text.splitlines()) or 1,
                                      "write one SELECT after the header comments"))
            return "", None
        if len(statements) > 1:
            issues.append(ConfigIssue("more than one SQL statement in a model", file, statements[1][0].line,
                                      "a model is a single SELECT; remove the extra statement"))
        first = statements[0]
        start = text.rfind("\n", 0, first[0].start) + 1  # keep comments on the statement's first line
        prefix = text[start:first[0].start]
        if "*/" in prefix and "/*" not in prefix[:prefix.find("*/")]:
            start = first[0].start  # (not the tail of a block comment opened on an earlier line)
        return text[start:first[-1].end + 1].strip(), first[0].line

    def check_dbt_adapter(self) -> None:
        """The relations in the manifest are only readable from a warehouse of dbt's type."""
        if self._dbt is None:
            return  # no model reads dbt
        manifest = self.dbt.loaded_manifest
        kind = getattr(self.warehouse, "type", None)
        if manifest is None or not manifest.adapter_type or kind is None or manifest.adapter_type == kind:
            return
        issue = ConfigIssue(f"the dbt project builds into {manifest.adapter_type} (manifest adapter_type) but "
                            f"the warehouse is {kind}", PROJECT_FILE, self.project_data_line("warehouse"),
                            "dinsync must read the warehouse dbt builds into: point warehouse at dbt's target")
        self.dbt_issues.append(issue)
        if self.dbt_strict:
            self.issues.append(issue)


def _single_statement(text: str) -> tuple[str, int] | None:
    """Fast path of `_model_sql` without a SQL tokenizer (keeps sqlglot out of start-up): a text
    with no `/*` and no `;` except one closing the last line is at most one statement, starting
    at its first line that is neither blank nor a `--` comment. None: tokenize it instead (also
    when a trailing line starting with `--` may be the end of a string spanning lines)."""
    body = text.rstrip()
    if body.endswith(";") and "--" not in body[body.rfind("\n") + 1:]:
        body = body[:-1]
    if ";" in body or "/*" in body:
        return None
    lines = body.splitlines()
    while lines and (not lines[-1].strip() or lines[-1].lstrip().startswith("--")):
        if lines[-1].strip() and any(q in body for q in "'\"$"):
            return None  # `'a\n-- b'`: the line is in a string, which the tokenizer sees
        lines.pop()  # trailing comment lines belong to no statement
    for number, line in enumerate(lines, 1):
        if line.strip() and not line.lstrip().startswith("--"):
            return "\n".join(lines[number - 1:]).strip(), number
    return None  # no statement: the tokenizer path reports it


_WRITE_WORD = re.compile(r"\b(insert|update|delete|merge)\b", re.IGNORECASE)


def _hidden_write(sql: str, dialect: str) -> str | None:
    """The write (INSERT, UPDATE, DELETE, MERGE) a SELECT holds, e.g. in a data-modifying CTE; None
    for a read-only query. DuckDB runs such a CTE when the query is bound, so the column check of
    `validate` changed the warehouse: refused before the warehouse sees the model. The planner's
    check (`check_model_sql`) decides, on the tokens where sqlglot cannot parse the dialect."""
    from ..diff.render import ModelSqlError, check_model_sql
    from ..lazy_imports import sqlglot_modules

    try:
        check_model_sql(sql, dialect)
        return None
    except ModelSqlError:
        pass
    sqlglot, exp = sqlglot_modules()
    try:
        trees = [t for t in sqlglot.parse(sql, read=dialect) if t is not None]
    except sqlglot.errors.TokenError:  # not SQL sqlglot can read (an unterminated string): the warehouse says why
        return None
    except sqlglot.errors.ParseError:
        trees = []
    kinds = [type(n).__name__.upper() for t in trees for n in t.walk() if isinstance(n, exp.DML)]
    return kinds[0] if kinds else (_WRITE_WORD.search(sql).group(1).upper())
