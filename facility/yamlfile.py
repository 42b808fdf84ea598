"""YAML files that remember where each value came from, so errors name file, line and field.

Site files, device profiles and rule files are all loaded here and validated with pydantic; a
validation error is translated back to the line of the offending value. Some of these files come
from outside (POST /rules/validate takes one from any engineer), so a file is held to limits of
size, aliases, values and nesting, and to YAML's plain tags, before it can cost much (see MAX_*).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from facility.errors import Invalid

Loc = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a file."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


@dataclass(frozen=True)
class ConfigWarning(Problem):
    """Something in a file that loads and works but is likely not what its author meant (a text in
    one language only): the loaders keep these beside what they load, for `facility check` to show."""


class ConfigError(Invalid):
    """A file that cannot be used; carries every problem found, each with file, line and field."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems), field=problems[0].field if problems else "")


# Limits on what one file may make the loader build. YAML aliases copy a value each time they are
# used, so a few hundred bytes of aliases of aliases expand to a billion values (the "billion
# laughs"), and an alias inside its own anchor never ends; nesting recurses in the parser and here.
# Real site, profile and rule files stay far below every limit; each limit is a ConfigError naming
# the line, so that a hostile or broken file costs milliseconds and says where it went wrong.
MAX_TEXT = 4_000_000
"""Characters in one file, checked before parsing: the demo site spends about 320 per device, so
this is room for over 10,000 devices (MAX_NODES binds first)."""
MAX_ALIASES = 100
"""Alias uses (`*name`) in one document: config reuses a few blocks, never hundreds."""
MAX_NODES = 100_000
"""Values built for one document, counting each value an alias copies again each time it is used:
the bound on memory and time that the alias limit alone does not give (9 aliases of 9 aliases ...).
The demo site builds about 17 per device: room for some 5,000 devices in one site file."""
MAX_DEPTH = 100
"""Lists and mappings nested in one another, aliases expanded: deep enough for any config, shallow
enough that neither PyYAML's composer nor `_construct` reaches Python's recursion limit."""

_YAML = "tag:yaml.org,2002:"
_SCALAR_TAGS = frozenset(_YAML + name for name in ("str", "int", "float", "bool", "null", "timestamp", "binary"))
_MAP, _SEQ, _MERGE = _YAML + "map", _YAML + "seq", _YAML + "merge"
_VALUE = _YAML + "value"  # what PyYAML resolves a plain `=` to, and has no constructor for
_BOOL = _YAML + "bool"
_LANGUAGES = ("zh", "en")


def _refusal(file: str, mark: yaml.Mark | None, message: str, loc: Loc = ()) -> ConfigError:
    return ConfigError([Problem(file, mark.line + 1 if mark is not None else None, _field(loc), message)])


class _Loader(yaml.SafeLoader):
    """Safe loader that counts what it composes (aliases, nesting) and keeps the state `_construct`
    needs to count and bound what it builds; duplicate keys are refused in `_construct`, as they are
    a classic source of silently ignored config."""

    def __init__(self, text: str, file: str) -> None:
        super().__init__(text)
        self.file = file
        self.aliases = 0
        self.depth = 0  # lists and mappings being composed
        self.nodes = 0  # values constructed, each alias expansion counted again
        self.within: set[int] = set()  # ids of the collection nodes being constructed
        self.bools: dict[Loc, str] = {}  # the text of each unquoted value or key YAML read as a bool

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        """PyYAML's, refusing the alias past MAX_ALIASES and the collection past MAX_DEPTH before
        the composer recurses into it."""
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise _refusal(
                    self.file,
                    self.peek_event().start_mark,
                    f"YAML: more than {MAX_ALIASES} aliases; a file that needs more is more likely built "
                    "to exhaust memory than to configure anything",
                )
        elif self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent):
            if self.depth >= MAX_DEPTH:
                raise _refusal(self.file, self.peek_event().start_mark, f"YAML: nested more than {MAX_DEPTH} deep")
            self.depth += 1
            node = super().compose_node(parent, index)
            self.depth -= 1
            return node
        return super().compose_node(parent, index)


def _construct(loader: _Loader, node: yaml.Node, loc: Loc, lines: dict[Loc, int]) -> Any:
    """The value of `node`, recording the line of every key path in `lines`. Every node visited
    counts toward MAX_NODES, an alias's node each time it is used; merges (`<<`) are done here
    rather than by PyYAML, so that what they copy is counted, bounded and checked for cycles too."""
    loader.nodes += 1
    if loader.nodes > MAX_NODES:
        raise _refusal(
            loader.file,
            node.start_mark,
            f"YAML: more than {MAX_NODES:,} values once aliases are expanded; aliases of aliases "
            "multiply (the 'billion laughs'): write the values out or use fewer aliases",
        )
    if isinstance(node, yaml.ScalarNode):
        value = _scalar(loader, node, loc)
        if node.tag == _BOOL and node.style is None:
            loader.bools[loc] = node.value
    elif id(node) in loader.within:
        raise _refusal(loader.file, node.start_mark, "YAML: an alias inside the value it names never ends")
    elif len(loader.within) >= MAX_DEPTH:
        raise _refusal(loader.file, node.start_mark, f"YAML: nested more than {MAX_DEPTH} deep")
    else:
        loader.within.add(id(node))
        value = _collection(loader, node, loc, lines)
        loader.within.discard(id(node))
    lines[loc] = node.start_mark.line + 1  # after a merge, which builds its mappings at this `loc` too
    return value


def _collection(loader: _Loader, node: yaml.Node, loc: Loc, lines: dict[Loc, int]) -> Any:
    """A list or mapping of YAML's plain kinds only: under another tag (!!set, !!omap, a Python
    object) it would be read as something it is not."""
    if isinstance(node, yaml.SequenceNode) and node.tag == _SEQ:
        return [_construct(loader, item, (*loc, i), lines) for i, item in enumerate(node.value)]
    if not (isinstance(node, yaml.MappingNode) and node.tag == _MAP):
        raise _refusal(loader.file, node.start_mark, f"YAML: the tag {node.tag!r} is not allowed", loc)
    out: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        if key_node.tag == _MERGE:
            merged = _merged(loader, value_node, loc, lines)
            for key in merged:
                if key in out:
                    raise _refusal(loader.file, key_node.start_mark, "duplicate key", (*loc, key))
            out.update(merged)
            continue
        if not isinstance(key_node, yaml.ScalarNode):
            message = "YAML: a key must be a single value, not a list or mapping"
            raise _refusal(loader.file, key_node.start_mark, message, loc)
        key = _scalar(loader, key_node, loc)
        if key_node.tag == _BOOL and key_node.style is None:
            loader.bools[(*loc, key)] = key_node.value  # a bare `off:` key; a bare bool value below wins
        if key in out:
            raise _refusal(loader.file, key_node.start_mark, "duplicate key", (*loc, key))
        out[key] = _construct(loader, value_node, (*loc, key), lines)
    return out


def _merged(loader: _Loader, node: yaml.Node, loc: Loc, lines: dict[Loc, int]) -> dict[Any, Any]:
    """The keys a merge (`<<: *a` or `<<: [*a, *b]`) brings in, built at `loc` so that their lines
    are those of the mapping they come from."""
    sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
    if not all(isinstance(source, yaml.MappingNode) for source in sources):
        raise _refusal(loader.file, node.start_mark, "YAML: << merges a mapping or a list of mappings", loc)
    out: dict[Any, Any] = {}
    for source in sources:
        for key, value in _construct(loader, source, loc, lines).items():
            if key in out:
                raise _refusal(loader.file, node.start_mark, "duplicate key", (*loc, key))
            out[key] = value
    return out


def _scalar(loader: _Loader, node: yaml.Node, loc: Loc) -> Any:
    """A plain value, of YAML's own scalar types only: a tag such as !!python/name would name code."""
    if node.tag == _VALUE:
        return node.value  # `=` is text, as PyYAML's own merge code makes it in a key
    if node.tag not in _SCALAR_TAGS:
        message = f"YAML: the tag {node.tag!r} is not allowed (quote the value if it is text)"
        raise _refusal(loader.file, node.start_mark, message, loc)
    try:
        return loader.construct_object(node)
    except (yaml.YAMLError, ValueError, LookupError, AttributeError):  # e.g. 2026-13-45, !!bool perhaps
        kind = node.tag.removeprefix(_YAML)
        message = f"YAML: cannot read this value as {kind} (quote it if it is text)"
        raise _refusal(loader.file, node.start_mark, message, loc) from None


@dataclass
class YamlDoc:
    """Parsed YAML with the line of every key path."""

    file: str
    data: Any
    lines: dict[Loc, int]
    bools: dict[Loc, str] = field(default_factory=dict)  # unquoted `off`, `yes`... read as bools (values and keys)

    def line_of(self, loc: Loc) -> int | None:
        """Line of the deepest part of `loc` that exists in the file."""
        for end in range(len(loc), -1, -1):
            if loc[:end] in self.lines:
                return self.lines[loc[:end]]
        return None

    def problem(self, loc: Loc, message: str) -> Problem:
        return Problem(self.file, self.line_of(loc), _field(loc), message)

    def warning(self, loc: Loc, message: str) -> ConfigWarning:
        return ConfigWarning(self.file, self.line_of(loc), _field(loc), message)

    def value_at(self, loc: Loc) -> Any:
        """The parsed value at `loc`, or None where the file has none."""
        value = self.data
        for part in loc:
            try:
                value = value[part]
            except (KeyError, IndexError, TypeError):
                return None
        return value

    def one_language(self, base: Loc = ()) -> list[ConfigWarning]:
        """A warning for each text under `base` given as {zh: ...} or {en: ...} alone: it loads,
        and the desk shows it in that language in both modes, but its author likely forgot one."""
        found: list[ConfigWarning] = []
        stack: list[tuple[Loc, Any]] = [(base, self.value_at(base))]
        while stack:
            loc, value = stack.pop()
            if isinstance(value, dict):
                given = [k for k in _LANGUAGES if isinstance(value.get(k), str)]
                if len(given) == 1 and set(value) <= set(_LANGUAGES):
                    other = "en" if given[0] == "zh" else "zh"
                    message = f"given in {given[0]} only: the desk shows this text in {other} mode too; add `{other}:`"
                    found.append(self.warning(loc, message))
                stack.extend(((*loc, k), v) for k, v in value.items())
            elif isinstance(value, list):
                stack.extend(((*loc, i), v) for i, v in enumerate(value))
        return sorted(found, key=lambda w: (w.line or 0, w.field))


def parse_yaml(text: str, file: str) -> YamlDoc:
    """Parse one YAML document; a syntax error, or a file past one of the limits above, becomes a
    ConfigError with its line."""
    if len(text) > MAX_TEXT:
        raise ConfigError([Problem(file, None, "", f"YAML: longer than {MAX_TEXT:,} characters")])
    try:
        loader = _Loader(text, file)  # the reader checks the characters here
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark else None
        raise ConfigError([Problem(file, line, "", f"YAML syntax: {exc.problem}")]) from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (a control character)
        line = text.count("\n", 0, exc.position) + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise ConfigError([Problem(file, line, "", f"YAML: the character U+{code:04X} is not allowed")]) from None
    lines: dict[Loc, int] = {}
    data = _construct(loader, node, (), lines) if node is not None else None
    return YamlDoc(file, data, lines, loader.bools)


def load_yaml(path: Path) -> YamlDoc:
    """Read and parse a file; no more than one character past MAX_TEXT is read, so that a huge file
    is refused without holding it in memory."""
    try:
        with path.open(encoding="utf-8") as stream:
            text = stream.read(MAX_TEXT + 1)
    except OSError as exc:
        raise ConfigError([Problem(str(path), None, "", f"cannot read: {exc.strerror}")]) from None
    return parse_yaml(text, str(path))


def validate(model: type[M], doc: YamlDoc, data: Any = None, base: Loc = ()) -> M:
    """Validate `data` (default: the whole document) found at `base`, naming lines on failure."""
    try:
        return model.model_validate(doc.data if data is None else data)
    except ValidationError as exc:
        raise ConfigError([_problem(doc, base, err) for err in exc.errors()]) from None


def _problem(doc: YamlDoc, base: Loc, err: Any) -> Problem:
    loc = base + tuple(p for p in err["loc"] if not _is_union_tag(p))
    message = err["msg"]
    if err["type"] in ("extra_forbidden", "unexpected_keyword_argument"):  # a model's field; a dataclass's
        message = "unknown field (check its spelling)"
    text = doc.bools.get(loc)
    if isinstance(err.get("input"), bool) and text is not None and text.lower() not in ("true", "false"):
        message += f"; YAML 1.1 reads a bare {text} as {str(err['input']).lower()}: write it quoted: '{text}'"
    return doc.problem(loc, message)


def _is_union_tag(part: str | int) -> bool:
    """pydantic inserts the tag of a union member or function validator into error locations."""
    return isinstance(part, str) and (part.startswith("function-") or "[" in part)


def _field(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, bool):  # a bare `off:` key, which YAML read as false
            part = "true" if part else "false"
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
