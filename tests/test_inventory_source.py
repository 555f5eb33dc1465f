"""sfarm.inventory.source: the line of a key path in TOML text, and how key paths are written."""

from __future__ import annotations

import itertools
import tomllib
from typing import Any

import pytest
import tomli_w
from hypothesis import given, settings
from hypothesis import strategies as st

from sfarm.inventory.source import KeyPath, SourceIndex, format_key_path, split_dotted

TEXT = '''\
# comment = not a key
version = 1

[farm]
name = "alpha"

[ networks . prod . nodes . "node 1" ]   # spaces around dots, a quoted name, a comment
host = "10.0.0.1"
tasks = [
  "mine",
  "studies",   # a comment inside the array
  "trade",
]
"quoted.key" = 3
'single quoted' = 4
a.b.c = 5
    indented = 6
inline = { x = 1, y = 2 }

[tasks.mine]
kind = "mine"
markets = ["BTC/USDT", "ETH/USDT"]
notes = """
fake = 1
[not.a.header]
"""
after = 2
literal = \'\'\'
[also.not.a.header]
\'\'\'
last = "tasks = ['x']"
'''


@pytest.fixture(scope="module")
def index() -> SourceIndex:
    tomllib.loads(TEXT)  # the sample is valid TOML: the index is tested on what users can write
    return SourceIndex.of(TEXT)


def line_of(text_fragment: str) -> int:
    """The 1-based line of TEXT that starts with `text_fragment` (the expectation, by content)."""
    (number,) = [n for n, line in enumerate(TEXT.splitlines(), 1)
                 if line.lstrip().startswith(text_fragment)]
    return number


def test_top_level_key(index: SourceIndex) -> None:
    assert index.line_of(("version",)) == 2


def test_table_header_and_its_keys(index: SourceIndex) -> None:
    assert index.line_of(("farm",)) == line_of("[farm]")
    assert index.line_of(("farm", "name")) == line_of('name = "alpha"')


def test_header_with_spaces_quotes_and_comment(index: SourceIndex) -> None:
    header = line_of("[ networks . prod")
    for depth_path in (("networks",), ("networks", "prod"), ("networks", "prod", "nodes"),
                       ("networks", "prod", "nodes", "node 1")):
        assert index.line_of(depth_path) == header
    assert index.line_of(("networks", "prod", "nodes", "node 1", "host")) == line_of("host =")


def test_quoted_keys(index: SourceIndex) -> None:
    node = ("networks", "prod", "nodes", "node 1")
    assert index.line_of((*node, "quoted.key")) == line_of('"quoted.key"')
    assert index.line_of((*node, "single quoted")) == line_of("'single quoted'")


def test_dotted_keys_every_prefix(index: SourceIndex) -> None:
    node = ("networks", "prod", "nodes", "node 1")
    line = line_of("a.b.c = 5")
    assert index.line_of((*node, "a")) == line
    assert index.line_of((*node, "a", "b")) == line
    assert index.line_of((*node, "a", "b", "c")) == line


def test_indented_key(index: SourceIndex) -> None:
    assert index.line_of(("networks", "prod", "nodes", "node 1", "indented")) == line_of("indented")


def test_multi_line_array_elements(index: SourceIndex) -> None:
    tasks = ("networks", "prod", "nodes", "node 1", "tasks")
    assert index.line_of(tasks) == line_of("tasks = [")
    assert index.line_of((*tasks, 0), "mine") == line_of('"mine",')
    assert index.line_of((*tasks, 1), "studies") == line_of('"studies",')
    assert index.line_of((*tasks, 2), "trade") == line_of('"trade",')


def test_array_element_not_found_falls_back_to_the_key(index: SourceIndex) -> None:
    tasks = ("networks", "prod", "nodes", "node 1", "tasks")
    assert index.line_of((*tasks, 7), "nowhere") == line_of("tasks = [")
    assert index.line_of((*tasks, 0), 42) == line_of("tasks = [")  # not a string: the key


def test_single_line_array_element(index: SourceIndex) -> None:
    markets = ("tasks", "mine", "markets")
    assert index.line_of((*markets, 1), "ETH/USDT") == line_of("markets =")


def test_inline_table_keys_map_to_the_key_line(index: SourceIndex) -> None:
    assert index.line_of(("networks", "prod", "nodes", "node 1", "inline", "x")) \
        == line_of("inline = {")


def test_missing_key_maps_to_its_longest_known_prefix(index: SourceIndex) -> None:
    assert index.line_of(("tasks", "mine", "timeframes")) == line_of("[tasks.mine]")
    assert index.line_of(("networks", "prod", "nodes", "elsewhere", "host")) \
        == line_of("[ networks . prod")


def test_path_not_in_the_text_has_no_line(index: SourceIndex) -> None:
    assert index.line_of(("exchanges", "binance")) is None
    assert index.line_of(()) is None


def test_multi_line_strings_hold_no_keys_or_headers(index: SourceIndex) -> None:
    assert index.line_of(("tasks", "mine", "notes")) == line_of('notes = """')
    assert ("tasks", "mine", "fake") not in index.positions
    assert ("not",) not in index.positions
    assert ("also",) not in index.positions
    # and the keys after the strings still belong to [tasks.mine]
    assert index.line_of(("tasks", "mine", "after")) == line_of("after = 2")
    assert index.line_of(("tasks", "mine", "last")) == line_of("last =")


@pytest.mark.parametrize("opening", [
    'note = "a string with \'\'\' and \\"\\"\\" inside"   # and """ in a comment',
    "note = 'a literal with \"\"\" inside'",
    'note = """one line only"""',
    'note = """ends with quotes"""""',
])
def test_triple_quotes_that_open_nothing(opening: str) -> None:
    text = f"[a]\n{opening}\nafter = 1\n"
    assert tomllib.loads(text)["a"]["after"] == 1
    assert SourceIndex.of(text).line_of(("a", "after")) == 3


def test_multi_line_strings_in_an_array_and_escaped_quotes() -> None:
    text = '''[a]
notes = [
  """first
[b]
x = 1""",
  \'\'\'second
y = 2\'\'\',
]
escaped = """ a \\""" is not the end
z = 3
"""
after = 1
'''
    assert tomllib.loads(text)["a"]["after"] == 1
    index = SourceIndex.of(text)
    assert index.line_of(("a", "after")) == 12
    for fake in (("b",), ("a", "x"), ("a", "y"), ("a", "z")):
        assert fake not in index.positions


def test_first_occurrence_wins() -> None:
    index = SourceIndex.of('[a]\nx = 1\n[b]\n[a.c]\ny = 2\n')
    assert index.line_of(("a",)) == 1
    assert index.line_of(("a", "c")) == 4
    assert index.line_of(("a", "c", "y")) == 5


def test_array_of_tables_header() -> None:
    index = SourceIndex.of('[[nodes]]\nname = "a"\n')
    assert index.line_of(("nodes", 0, "name")) == 2


@pytest.mark.parametrize(("text", "parts"), [
    ("networks.prod.nodes", ("networks", "prod", "nodes")),
    ('networks."node 1"', ("networks", "node 1")),
    ("a.'b.c'.d", ("a", "b.c", "d")),
    (" a . b ", ("a", "b")),
    ("single", ("single",)),
    ('"with = sign"', ("with = sign",)),
    (r'"a\"b".c', ('a"b', "c")),
    (r'"caf\u00e9"', ("café",)),
    ("''", ("",)),
])
def test_split_dotted(text: str, parts: tuple[str, ...]) -> None:
    assert split_dotted(text) == parts


@pytest.mark.parametrize(("path", "text"), [
    (("networks", "prod", "nodes", "a", "tasks", 0), "networks.prod.nodes.a.tasks[0]"),
    (("networks", "prod", "nodes", "node 1"), 'networks.prod.nodes."node 1"'),
    (("tasks", "studies/btc"), 'tasks."studies/btc"'),
    (("node 1",), '"node 1"'),
    (("version",), "version"),
    ((), "(top level)"),
])
def test_format_key_path(path: tuple[str | int, ...], text: str) -> None:
    assert format_key_path(path) == text


# --- property: every key of any document tomli_w writes ------------------------------------------

KEY_TEXT = st.text(alphabet="abxyz09-_ .#=[]'\"\\é", min_size=1, max_size=6)


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    """Nested tables whose leaves are unique strings `v<n>`: plain, in arrays, or multi-line
    strings whose text looks like TOML (a header, a key) to tempt the index."""
    counter = itertools.count()

    def table(depth: int) -> dict[str, Any]:
        keys = draw(st.lists(KEY_TEXT, min_size=1, max_size=4, unique=True))
        kinds = ["string", "array", "multi-line"] + (["table"] if depth < 3 else [])
        result: dict[str, Any] = {}
        for key in keys:
            kind = draw(st.sampled_from(kinds))
            if kind == "string":
                result[key] = f"v{next(counter)}"
            elif kind == "multi-line":
                result[key] = f"v{next(counter)}\n[fake.header]\nfake = 1\n"
            elif kind == "array":
                result[key] = [f"v{next(counter)}" for _ in range(draw(st.integers(1, 3)))]
            else:
                result[key] = table(depth + 1)
        return result

    return table(0)


def leaves(document: dict[str, Any], prefix: KeyPath = ()) -> list[tuple[KeyPath, str]]:
    found: list[tuple[KeyPath, str]] = []
    for key, value in document.items():
        if isinstance(value, dict):
            found += leaves(value, (*prefix, key))
        elif isinstance(value, list):
            found += [((*prefix, key, i), item) for i, item in enumerate(value)]
        else:
            found.append(((*prefix, key), value))
    return found


@settings(max_examples=150, deadline=None)
@given(documents())
def test_every_leaf_is_found_on_its_line(document: dict[str, Any]) -> None:
    text = tomli_w.dumps(document, multiline_strings=True)
    assert tomllib.loads(text) == document
    lines = text.splitlines()
    index = SourceIndex.of(text)
    for path, value in leaves(document):
        if "\n" in value:  # tomli_w starts the text on the line after `key = """`
            (text_line,) = [n for n, line in enumerate(lines, 1) if line == value.split()[0]]
            expected = text_line - 1
        else:
            (expected,) = [n for n, line in enumerate(lines, 1) if f'"{value}"' in line]
        assert index.line_of(path, value) == expected, (path, text)
