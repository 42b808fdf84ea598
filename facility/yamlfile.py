"""YAML files that remember where each value came from, so errors name file, line and field.

Site files, device profiles and rule files are all loaded here and validated with pydantic; a
validation error is translated back to the line of the offending value.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

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


class ConfigError(Exception):
    """A file that cannot be used; carries every problem found, each with file, line and field."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class _Loader(yaml.SafeLoader):
    """Safe loader that refuses duplicate keys, a classic source of silently ignored config."""


def _construct(loader: _Loader, node: yaml.Node, loc: Loc, lines: dict[Loc, int], file: str) -> Any:
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # resolve YAML merge keys (<<)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node)
            if key in out:
                raise ConfigError([Problem(file, key_node.start_mark.line + 1, _field((*loc, key)), "duplicate key")])
            out[key] = _construct(loader, value_node, (*loc, key), lines, file)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(loader, item, (*loc, i), lines, file) for i, item in enumerate(node.value)]
    return loader.construct_object(node)


@dataclass
class YamlDoc:
    """Parsed YAML with the line of every key path."""

    file: str
    data: Any
    lines: dict[Loc, int]

    def line_of(self, loc: Loc) -> int | None:
        """Line of the deepest part of `loc` that exists in the file."""
        for end in range(len(loc), -1, -1):
            if loc[:end] in self.lines:
                return self.lines[loc[:end]]
        return None

    def problem(self, loc: Loc, message: str) -> Problem:
        return Problem(self.file, self.line_of(loc), _field(loc), message)


def parse_yaml(text: str, file: str) -> YamlDoc:
    """Parse one YAML document; a syntax error becomes a ConfigError with its line."""
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark else None
        raise ConfigError([Problem(file, line, "", f"YAML syntax: {exc.problem}")]) from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (a control character)
        line = text.count("\n", 0, exc.position) + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise ConfigError([Problem(file, line, "", f"YAML: the character U+{code:04X} is not allowed")]) from None
    lines: dict[Loc, int] = {}
    data = _construct(_Loader(""), node, (), lines, file) if node is not None else None
    return YamlDoc(file, data, lines)


def load_yaml(path: Path) -> YamlDoc:
    try:
        text = path.read_text(encoding="utf-8")
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
    if err["type"] == "extra_forbidden":
        message = "unknown field (check its spelling)"
    return doc.problem(loc, message)


def _is_union_tag(part: str | int) -> bool:
    """pydantic inserts the tag of a union member or function validator into error locations."""
    return isinstance(part, str) and (part.startswith("function-") or "[" in part)


def _field(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
