"""scripts/run_notebooks.py's book preparation: the book switch, hidden parameters cells, one parameters table,
the intro's chapter list. No kernel is started: the notebooks here are written by the test."""

import importlib.util
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def runner():
    spec = importlib.util.spec_from_file_location("run_notebooks", ROOT / "scripts" / "run_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _notebook(path: Path, injected: bool = True) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    params = nbformat.v4.new_code_cell('epochs = 8\nname = "a|b"\nbook = False')
    params.metadata["tags"] = ["parameters"]
    cells = [nbformat.v4.new_markdown_cell("# 07 · A chapter\n\nIt trains a model. Then more."), params]
    if injected:
        injected_cell = nbformat.v4.new_code_cell("# Parameters\nepochs = 1\nbook = True\n")
        injected_cell.metadata["tags"] = ["injected-parameters"]
        cells.append(injected_cell)
    cells.append(nbformat.v4.new_code_cell("print(epochs)"))
    nb.cells = cells
    nbformat.write(nb, path)
    return path


def test_book_switch_is_passed_only_to_notebooks_that_define_it(runner, tmp_path):
    with_book = _notebook(tmp_path / "07_a.ipynb")
    assert runner.notebook_parameters(with_book, {"07_a.ipynb": {"epochs": 1}}, book=True) == {"epochs": 1,
                                                                                                  "book": True}
    assert runner.notebook_parameters(with_book, {"07_a.ipynb": {"epochs": 1}}) == {"epochs": 1}
    nb = nbformat.read(with_book, as_version=4)
    nb.cells[1].source = "epochs = 8"
    nbformat.write(nb, with_book)
    assert runner.notebook_parameters(with_book, {}, book=True) == {}


def test_parameters_table_marks_what_the_profile_set(runner):
    defaults = {"epochs": {"default": "8"}, "name": {"default": '"a|b"'}, "book": {"default": "False"}}
    text = runner.parameters_markdown(defaults, {"epochs": 1, "book": True}, "demo,smoke")
    assert "profile `demo,smoke`" in text
    assert "**`epochs = 1`**" in text            # set by the profile: bold
    assert "`name = 'a\\|b'`" in text             # a notebook default, pipe escaped for the table
    assert "book" not in text.split("\n", 1)[1]   # the switch is not a parameter of the run


def test_finish_for_book_hides_both_parameters_cells_and_adds_one_table(runner, tmp_path):
    import papermill

    path = _notebook(tmp_path / "07_a.ipynb")
    defaults = papermill.inspect_notebook(str(path))
    for _ in range(2):  # idempotent: a second pass does not add a second table
        runner.finish_for_book(path, defaults, {"epochs": 1}, "demo")
    nb = nbformat.read(path, as_version=4)
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    assert "remove-cell" in tags[1] and "remove-cell" in tags[2]
    tables = [c for c in nb.cells if runner.PARAMETERS_TABLE_TAG in c.metadata.get("tags", [])]
    assert len(tables) == 1 and nb.cells.index(tables[0]) == 3
    assert "**`epochs = 1`**" in tables[0].source and "`name = 'a\\|b'`" in tables[0].source


def test_book_info_lists_chapters_and_the_profile(runner, tmp_path):
    _notebook(tmp_path / "07_a.ipynb")
    nb = nbformat.read(tmp_path / "07_a.ipynb", as_version=4)
    nb.metadata["brats"] = {"summary": "One line."}
    nbformat.write(nb, tmp_path / "08_b.ipynb")
    text = runner.write_book_info(tmp_path, "demo").read_text()
    assert "**`demo`** profile" in text
    assert "{doc}`07 · A chapter </book/executed/07_a>` | It trains a model. |" in text
    assert "{doc}`07 · A chapter </book/executed/08_b>` | One line. |" in text
    assert "NETC (1)" in text and "#D55E00" in text   # the house palette, from brats_lib.labels


def test_the_app_is_not_a_chapter_of_the_book(runner, tmp_path):
    names = {p.name: runner.in_book(p) for p in runner.numbered_notebooks()}
    assert names["10_segment_app.ipynb"] is False
    assert all(v for k, v in names.items() if k != "10_segment_app.ipynb")
    plain = _notebook(tmp_path / "99_plain.ipynb", injected=False)
    assert runner.in_book(plain) is True


def test_which_notebooks_a_profile_run_executes(runner):
    notebooks = runner.numbered_notebooks()
    names = lambda chosen: [p.stem[:2] for p in chosen]  # noqa: E731
    demo = runner.load_profile("demo,smoke")
    assert "12" not in names(runner.chosen_notebooks(notebooks, demo, "demo,smoke", None, book=True))
    assert "10" not in names(runner.chosen_notebooks(notebooks, demo, "demo,smoke", None, book=True))
    assert "00" in names(runner.chosen_notebooks(notebooks, demo, "demo,smoke", None, book=True))
    # a profile without _defaults (the studies of named chapters) runs only the notebooks it names
    assert names(runner.chosen_notebooks(notebooks, runner.load_profile("real"), "real", None, book=True)) == ["12"]
    assert names(runner.chosen_notebooks(notebooks, runner.load_profile("study"), "study", None, book=True)) == ["07", "11"]
    # --only runs what it names, whatever the profile
    assert names(runner.chosen_notebooks(notebooks, demo, "demo", ["12"], book=True)) == ["12"]
