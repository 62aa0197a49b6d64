"""The README's Python example runs as written."""

from __future__ import annotations

import re
from pathlib import Path


def test_readme_python_example_runs():
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    assert blocks, "README has no python example"
    namespace: dict[str, object] = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)  # noqa: S102 -- our own README example
    assert tuple(namespace["plan"].action.shape) == (1, 2)
    assert tuple(namespace["rollout"].rewards.shape) == (15, 8)
    assert tuple(namespace["returns"].shape) == (8,)
