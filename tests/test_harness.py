"""The xdist harness's order of files (tests/harness.py): the long files first, then by number of tests."""

from __future__ import annotations

from types import SimpleNamespace

from tests import harness
from tests.support.live import ROOT


def _items(*nodeids: str) -> list[SimpleNamespace]:
    return [SimpleNamespace(nodeid=nodeid) for nodeid in nodeids]


def test_long_files_come_first_in_their_order_then_the_others_by_number_of_tests() -> None:
    first, second = harness.LONG_FILES[0], harness.LONG_FILES[1]
    items = _items(
        "tests/a/test_one.py::test_x",
        f"{second}::test_b",
        "tests/b/test_three.py::test_x",
        "tests/b/test_three.py::test_y[1]",
        "tests/b/test_three.py::test_y[2]",
        "tests/c/test_two.py::test_x",
        "tests/c/test_two.py::test_y",
        f"{first}::test_a",
        f"{second}::test_a",
    )
    ordered = [item.nodeid for item in harness.long_files_first(items)]  # type: ignore[arg-type]
    assert ordered == [
        f"{first}::test_a",
        f"{second}::test_b",  # a file's tests keep their order
        f"{second}::test_a",
        "tests/b/test_three.py::test_x",
        "tests/b/test_three.py::test_y[1]",
        "tests/b/test_three.py::test_y[2]",
        "tests/c/test_two.py::test_x",
        "tests/c/test_two.py::test_y",
        "tests/a/test_one.py::test_x",
    ]


def test_every_long_file_exists() -> None:
    """A renamed or removed file must leave the list too (it would silently stop being handed out first)."""
    assert len(set(harness.LONG_FILES)) == len(harness.LONG_FILES)
    assert [path for path in harness.LONG_FILES if not (ROOT / path).is_file()] == []
