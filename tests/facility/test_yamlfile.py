"""Hostile YAML: a file built to exhaust memory or the stack (aliases that expand a billion times,
an alias inside itself, nesting 10,000 deep, a huge text) and tags that name Python objects are
refused as a ConfigError naming the file and line, never a crash, a RecursionError or a 500."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest

from facility.site import load_site
from facility.yamlfile import MAX_ALIASES, MAX_DEPTH, MAX_NODES, MAX_TEXT, ConfigError, Problem, load_yaml, parse_yaml

# Nine lists, each of nine aliases of the one before: 72 aliases (under the limit), under 450 bytes,
# and 9**9 (387 million) values once expanded. `facility check` on it used to run past 2 GB.
LAUGHS = "".join(
    [
        "site: {id: t}\n",
        "l0: &a0 [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n",
        *(f"l{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 9)),
        "devices: []\n",
    ]
)
MEMORY = 512 * 2**20  # far above what `facility check` needs, far below what the expansion takes


def refused(text: str, file: str = "rules.yaml") -> Problem:
    """The one problem parsing `text` finds."""
    with pytest.raises(ConfigError) as caught:
        parse_yaml(text, file)
    (problem,) = caught.value.problems
    return problem


def limited_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def test_a_billion_laughs_is_refused_once_it_has_built_too_many_values() -> None:
    assert len(LAUGHS.encode()) < 450 and LAUGHS.count("*") < MAX_ALIASES
    problem = refused(LAUGHS)
    assert problem.file == "rules.yaml" and problem.line == 2  # the innermost list, where the count ran out
    assert str(problem).startswith(f"rules.yaml:2: YAML: more than {MAX_NODES:,} values once aliases are expanded")


def test_facility_check_refuses_a_billion_laughs_fast_naming_the_line(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(LAUGHS)
    result = subprocess.run(
        [sys.executable, "-m", "facility_app", "check", str(site)],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=limited_memory,
    )
    assert result.returncode == 2, result.stderr
    assert f"{site}:2: YAML: more than {MAX_NODES:,} values" in result.stderr
    with pytest.raises(ConfigError, match=r"site\.yaml:2: YAML: more than"):
        load_site(site)


def test_facility_rules_check_refuses_a_billion_laughs(tmp_path: Path, repo_root: Path) -> None:
    rules = tmp_path / "bomb.yaml"
    rules.write_text(LAUGHS.replace("site: {id: t}\n", "rules: []\n").replace("devices: []\n", ""))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "facility_app",
            "rules",
            "check",
            str(rules),
            "--site",
            str(repo_root / "sites/demo/site.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=limited_memory,
    )
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith(f"{rules}:2: YAML: more than {MAX_NODES:,} values")


def test_more_aliases_than_the_limit_are_refused_at_the_first_one_too_many() -> None:
    text = "a: &a x\nb:\n" + "  - *a\n" * (MAX_ALIASES + 1)
    problem = refused(text)
    assert problem.line == 3 + MAX_ALIASES
    assert str(problem).startswith(f"rules.yaml:{3 + MAX_ALIASES}: YAML: more than {MAX_ALIASES} aliases;")
    assert parse_yaml("a: &a x\nb:\n" + "  - *a\n" * MAX_ALIASES, "ok.yaml").data["b"] == ["x"] * MAX_ALIASES


@pytest.mark.parametrize(
    "text",
    [
        "a: &a [*a]\n",
        "a: &a {b: *a}\n",
        "x: 1\na: &a {k: {<<: *a}}\n",  # a merge that puts a mapping inside itself
    ],
)
def test_an_alias_inside_its_own_anchor_is_refused(text: str) -> None:
    problem = refused(text)
    assert problem.line == text.count("\n")
    assert "an alias inside the value it names" in problem.message


def test_nesting_too_deep_is_refused_not_a_recursion_error() -> None:
    problem = refused("a: " + "[" * 10_000 + "]" * 10_000 + "\n")
    assert (problem.line, problem.message) == (1, f"YAML: nested more than {MAX_DEPTH} deep")
    assert parse_yaml("[" * MAX_DEPTH + "]" * MAX_DEPTH, "ok.yaml").data is not None


def test_nesting_built_up_through_aliases_is_refused_too() -> None:
    inner = "[" * 90 + "x" + "]" * 90
    text = f"a: &a {inner}\nb: &b {'[' * 90}*a{']' * 90}\n"
    assert refused(text).message == f"YAML: nested more than {MAX_DEPTH} deep"


def test_a_text_over_the_size_limit_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    big = "# " + "x" * MAX_TEXT + "\na: 1\n"
    problem = refused(big)
    assert (problem.line, problem.message) == (None, f"YAML: longer than {MAX_TEXT:,} characters")
    path = tmp_path / "big.yaml"
    path.write_text(big)
    with pytest.raises(ConfigError, match=r"big\.yaml: YAML: longer than"):
        load_yaml(path)


@pytest.mark.parametrize(
    ("text", "line", "tag"),
    [
        ("a: 1\nrun: !!python/name:os.system x\n", 2, "tag:yaml.org,2002:python/name:os.system"),
        (
            "a: 1\nrun: !!python/object/apply:os.system [echo hi]\n",
            2,
            "tag:yaml.org,2002:python/object/apply:os.system",
        ),
        ("a: 1\nb: !!omap [{x: 1}]\n", 2, "tag:yaml.org,2002:omap"),
        ("a: !custom {x: 1}\n", 1, "!custom"),
    ],
)
def test_an_unknown_tag_is_refused_with_its_line(text: str, line: int, tag: str) -> None:
    problem = refused(text)
    assert problem.line == line
    assert problem.message.startswith("YAML: the tag") and tag in problem.message


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("a: 1\nday: 2026-13-45\n", 2),  # looks like a date, is not one
        ("ok: !!bool perhaps\n", 1),
        ("at: !!timestamp soon\n", 1),
        ("n: " + "9" * 5000 + "\n", 1),  # more digits than Python converts
    ],
)
def test_a_value_its_tag_cannot_read_is_refused_with_its_line(text: str, line: int) -> None:
    problem = refused(text)
    assert problem.line == line and problem.message.startswith("YAML: cannot read this value")


def test_a_merge_of_anything_but_mappings_is_refused() -> None:
    problem = refused("a: 1\nb: {<<: 1}\n")
    assert (problem.line, problem.field, problem.message) == (2, "b", "YAML: << merges a mapping or a list of mappings")


def test_a_list_or_mapping_as_a_key_is_refused() -> None:
    problem = refused("a: 1\n? [x, y]\n: 2\n")
    assert (problem.line, problem.message) == (2, "YAML: a key must be a single value, not a list or mapping")


def test_ordinary_aliases_and_merges_still_load_with_their_lines() -> None:
    text = "base: &b {x: 1, y: [1, 2]}\nmore: &m {w: 0}\nuse:\n  <<: [*b, *m]\n  z: 3\nagain: *b\n=: is text\n"
    doc = parse_yaml(text, "ok.yaml")
    assert doc.data["use"] == {"x": 1, "y": [1, 2], "w": 0, "z": 3} and doc.data["="] == "is text"
    assert doc.data["again"] == doc.data["base"] and doc.data["again"] is not doc.data["base"]  # a copy
    assert [doc.line_of(("use", key)) for key in ("x", "w", "z")] == [1, 2, 5]
    assert doc.line_of(("use",)) == 4
    overridden = refused("base: &b {x: 1}\nuse:\n  <<: *b\n  x: 2\n")  # as before: a key twice is refused
    assert (overridden.line, overridden.field, overridden.message) == (4, "use.x", "duplicate key")
