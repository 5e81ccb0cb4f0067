"""Reruns follow the code that really runs: each rule's `code` param digests its adapter and
every library module the adapter imports (ganflow/digest.py), and config order does not count."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from ganflow.digest import canonical, imported_modules, script_digest
from workflow import REPO, jobs_planned, snakemake

LIBRARY = REPO / "ganflow"
SCRIPTS = REPO / "workflow_scripts"


def rule_adapters() -> dict[str, str]:
    """rule name -> adapter name, read from rules/*.smk; each rule's code param names its own adapter."""
    found = {}
    for smk in sorted((REPO / "rules").glob("*.smk")):
        for block in re.split(r"\n(?= *(?:rule|checkpoint) )", smk.read_text())[1:]:
            name = re.match(r" *(?:rule|checkpoint) (\w+):", block).group(1)
            adapter = re.search(r'adapter\("(\w+)"\)', block).group(1)
            assert f'code=code_digest("{adapter}")' in block, f"rule {name}: code param is not its adapter's"
            found[name] = adapter
    return found


def test_every_rule_has_an_adapter_and_digests_it():
    adapters = rule_adapters()
    assert len(adapters) >= 20
    assert {f"{a}.py" for a in adapters.values()} == {p.name for p in SCRIPTS.glob("*.py")}  # no orphans


def test_import_graph_is_transitive_and_complete():
    # the modules the hand-kept lists missed: funnel draws contact sheets from decoded images,
    # rank reads images through imaging and the dataset through records, train writes fakes
    # grids via media and reads its data through records
    assert {"contact", "imaging"} <= set(imported_modules(SCRIPTS / "funnel.py", LIBRARY))
    assert {"records", "imaging", "networks", "weights"} <= set(imported_modules(SCRIPTS / "rank.py", LIBRARY))
    assert {"media", "networks", "augment", "swd", "records"} <= set(imported_modules(SCRIPTS / "train.py", LIBRARY))
    # and nothing that is not imported: what only loads trained weights does not run training
    # code, and the report pages need no network at all
    for adapter in ("rank", "samples", "figures", "videos_walk"):
        assert not {"train", "trainer", "losses"} & set(imported_modules(SCRIPTS / f"{adapter}.py", LIBRARY))
    assert "networks" not in imported_modules(SCRIPTS / "report.py", LIBRARY)


def test_digest_changes_with_any_imported_module(tmp_path):
    lib = tmp_path / "ganflow"
    shutil.copytree(LIBRARY, lib, ignore=shutil.ignore_patterns("__pycache__"))
    script = SCRIPTS / "funnel.py"
    before = script_digest(script, lib)
    for name in imported_modules(script, lib):
        path = lib / f"{name}.py"
        text = path.read_text()
        path.write_text(text + "\n# edited\n")
        assert script_digest(script, lib) != before, name
        path.write_text(text)
    assert script_digest(script, lib) == before
    (lib / "networks.py").write_text((lib / "networks.py").read_text() + "\n# edited\n")
    assert script_digest(script, lib) == before  # funnel does not run the networks


def test_canonical_params_ignore_key_order():
    a = {"b": 1, "a": {"y": [1, {"q": 2, "p": 3}], "x": 2}}
    b = {"a": {"x": 2, "y": [1, {"p": 3, "q": 2}]}, "b": 1}
    assert repr(canonical(a)) == repr(canonical(b))
    assert repr(canonical(a)) != repr(canonical({**b, "b": 2}))


def _params_changed(workdir: Path, workflow: Path) -> set[str]:
    """Rules a dry run reports with "Params have changed" (it evaluates a job's params only
    while nothing upstream of it is to rerun, so this sees the first stale rules only)."""
    out = snakemake(workdir, "-s", str(workflow / "Snakefile"), "--dry-run").stdout
    rules, rule = set(), None
    for line in out.splitlines():
        if m := re.match(r"(?:local)?(?:rule|checkpoint) (\w+):", line.strip()):
            rule = m.group(1)
        elif line.strip().startswith("reason:") and "Params have changed" in line:
            rules.add(rule)
    return rules


def _stale_code(workdir: Path, workflow: Path, adapters: dict[str, str]) -> set[str]:
    """Rules with a recorded job (Snakemake's metadata of each output) whose code param is not
    the digest the workflow copy computes now: what Snakemake's params trigger reruns."""
    now = {rule: repr(script_digest(workflow / "workflow_scripts" / f"{adapter}.py", workflow / "ganflow"))
           for rule, adapter in adapters.items()}
    stale = set()
    for record in (workdir / ".snakemake" / "metadata").iterdir():
        meta = json.loads(record.read_text())
        if meta["rule"] in now and now[meta["rule"]] not in meta["params"]:
            stale.add(meta["rule"])
    return stale


@pytest.mark.slow
def test_editing_a_module_reruns_exactly_the_rules_that_import_it(run, tmp_path):
    """A copy of the workflow (every file new, as after a checkout or a restore) reruns nothing;
    editing one library module makes exactly the rules whose adapters import it stale."""
    wd, _ = run
    copy = tmp_path / "workflow"
    copy.mkdir()
    for part in ("Snakefile", "rules", "workflow_scripts", "ganflow", "config", "profiles", "envs", "report"):
        src = REPO / part
        (shutil.copytree if src.is_dir() else shutil.copy)(src, copy / part, **(
            {"ignore": shutil.ignore_patterns("__pycache__")} if src.is_dir() else {}))
    assert "Nothing to be done" in snakemake(wd, "-s", str(copy / "Snakefile"), "--dry-run").stdout
    in_dag = set(jobs_planned(wd, "--forceall")) - {"all"}
    adapters = {rule: adapter for rule, adapter in rule_adapters().items() if rule in in_dag}
    assert _stale_code(wd, copy, adapters) == set()
    for module in ("imaging", "samples", "report", "contact"):
        path = copy / "ganflow" / f"{module}.py"
        text = path.read_text()
        path.write_text(text + "\n# edited\n")
        expected = {rule for rule, adapter in adapters.items()
                    if module in imported_modules(SCRIPTS / f"{adapter}.py", LIBRARY)}
        assert expected and _stale_code(wd, copy, adapters) == expected, module
        if module == "report":  # the report pages come last in the chain, so Snakemake shows them,
            # but the overview, which reads the curves and histograms, for its inputs only
            assert _params_changed(wd, copy) == expected - {"report_overview"}
        path.write_text(text)
