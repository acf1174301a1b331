"""Every tfxfer call in the README's Python blocks names a function that exists and arguments it takes.

Only the first block ("Ten lines of Python") can run offline as written (`test_readme_example.py` runs
it); the others need the reader's data or files. This test reads each block's imports, resolves every
call on an imported name or module (``tfxfer.fine_tune``, ``tx.export_all``, ``DANN``) and binds its
positional count and keyword names to the real signature, so a renamed function or argument fails here
instead of in a user's first session. Attributes the blocks read on what tfxfer returns
(``result.to_markdown()``, ``shift.verdict``, ``ds.class_weights()``) are checked against the class the
function's return annotation names.
"""

import os
import re

import pytest

from tests.api_calls import check_attributes, check_block

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def python_blocks():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        return re.findall(r"```python\n(.*?)```", f.read(), re.S)


def test_the_attribute_check_catches_a_misspelt_result_field():
    code = "import tfxfer\nresult = tfxfer.fine_tune(model, data)\nresult.history\nresult.histroy\n"
    checked, problems = check_attributes(code)
    assert checked == 2 and len(problems) == 1 and "FineTuneResult has no attribute 'histroy'" in problems[0]


def test_readme_blocks_read_attributes_their_results_have():
    totals = [check_attributes(code) for code in python_blocks()]
    assert sum(checked for checked, _ in totals) >= 10
    assert [p for _, problems in totals for p in problems] == []


def test_the_checker_catches_a_wrong_argument_and_a_missing_function():
    checked, problems = check_block("import tfxfer\ntfxfer.fine_tune(model, data, head_epoch=3)\ntfxfer.no_such()\n")
    assert checked == 1 and len(problems) == 2
    assert any("head_epoch" in p for p in problems) and any("no_such does not exist" in p for p in problems)


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_block_calls_match_the_api(index):
    checked, problems = check_block(python_blocks()[index])
    assert checked >= 1, "no tfxfer call found: the block's imports changed"
    assert not problems, problems
