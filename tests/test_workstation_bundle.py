"""The workstation's JavaScript bundle: the shell (workstation.js) with each concern file in it once, one home per
closure-level name, and the test hooks only when asked for (GAZEX_TEST_HOOKS or Workstation(test_hooks=True))."""

from __future__ import annotations

import re

from app.workstation import component
from app.workstation.component import (ASSET_DIR, CONCERN_JS, CONCERNS_MARKER, SHELL_JS, TEST_HOOKS_JS,
                                       TEST_HOOKS_MARKER, bundled_js)

# a declaration directly in the workstation's closure (two-space indent): const/let/function/async function NAME
CLOSURE_DECLARATION = re.compile(r"^  (?:const|let|var|function|async function)\s+([A-Za-z_$][\w$]*)", re.M)


def _source(name: str) -> str:
    return (ASSET_DIR / name).read_text(encoding="utf-8")


def test_every_js_file_in_the_package_is_the_shell_a_concern_or_the_test_hooks():
    on_disk = {p.name for p in ASSET_DIR.glob("*.js")}
    assert on_disk == {SHELL_JS, TEST_HOOKS_JS, *CONCERN_JS}
    assert len(set(CONCERN_JS)) == len(CONCERN_JS)


def test_bundle_holds_the_shell_and_each_concern_once_in_order():
    js = bundled_js(test_hooks=False)
    positions = []
    for name in CONCERN_JS:
        body = _source(name).strip()
        assert js.count(body) == 1, f"{name} is in the bundle {js.count(body)} times"
        positions.append(js.index(body))
    assert positions == sorted(positions)
    shell_head, shell_tail = _source(SHELL_JS).split(CONCERNS_MARKER)
    assert js.count(shell_head.strip()) == 1 and js.count(shell_tail.replace(TEST_HOOKS_MARKER, "").strip()) == 1
    assert js.index(shell_head.strip()) < positions[0] and js.index(shell_tail.split(TEST_HOOKS_MARKER)[0].strip()) > positions[-1]
    assert CONCERNS_MARKER not in js and TEST_HOOKS_MARKER not in js


def test_no_closure_level_name_has_two_homes():
    homes: dict[str, list[str]] = {}
    for name in (SHELL_JS, *CONCERN_JS, TEST_HOOKS_JS):
        for declared in CLOSURE_DECLARATION.findall(_source(name)):
            homes.setdefault(declared, []).append(name)
    assert {n: files for n, files in homes.items() if len(files) > 1} == {}
    assert len(homes) > 150   # the pattern does find the closure's declarations


def test_test_hooks_only_when_asked_for(monkeypatch):
    hooks = _source(TEST_HOOKS_JS).strip()
    monkeypatch.delenv(component.TEST_HOOKS_ENV, raising=False)
    for js in (bundled_js(), bundled_js(test_hooks=False)):
        assert hooks not in js and "setImageDelay" not in js and "canvasSample" not in js
        assert "gazexWorkstation" in js                 # production still gets {painted, studyKey}
    assert bundled_js(test_hooks=True).count(hooks) == 1
    monkeypatch.setenv(component.TEST_HOOKS_ENV, "1")
    assert bundled_js().count(hooks) == 1
    assert hooks not in bundled_js(test_hooks=False)
