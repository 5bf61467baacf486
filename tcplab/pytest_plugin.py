"""pytest plugin (entry point `pytest11`): scenario files as test items, for CI.

    sudo .venv/bin/pytest scenarios/                    # every scenario, one item each
    sudo .venv/bin/pytest scenarios/handshake/normal.yaml --tcplab-json results/

What is collected: a .yaml/.yml file whose top level has a `scenario:` key, and only
when the command line names that file itself or names a path inside a `tcplab_scenarios`
directory (ini option; default `scenarios` under the rootdir). So `pytest scenarios/`
runs the catalogue, while `pytest`, `pytest tests/` or `pytest .` never do: the
project's own test run (testpaths = tests) and tests/bad_input/*.yaml are left alone.

Each item runs its scenario through tcplab.runner.run_scenario, as `tcplab run` does.
The lab run is the item's set-up, so a run the lab could not judge (verdict `error`:
not root, a child died, ...) is reported as an ERROR with the reason; the judging is
the test, so verdict `fail` is a FAILURE listing every check that failed (expected,
actual, tolerance, proof). A scenario file the loader rejects is a collection error
carrying the loader's `file:line: key: message`.
"""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path

import pytest

from tcplab.errors import ScenarioError

_SCENARIO_KEY = re.compile(rb"^(scenario|'scenario'|\"scenario\")[ \t]*:", re.M)
_HEAD = 64 * 1024  # a scenario's `scenario:` line comes early; do not read huge files


def is_root() -> bool:
    """The seam the plugin's tests replace to take the not-root path as root."""
    return os.geteuid() == 0


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tcplab", "tcplab scenario files")
    group.addoption(
        "--tcplab-json",
        metavar="DIR",
        default=None,
        help="keep each scenario's result JSON (as `tcplab run --json`) in DIR",
    )
    parser.addini(
        "tcplab_scenarios",
        type="paths",
        default=[],
        help="directories whose scenario files pytest may collect when a "
        "command-line path lies inside them (default: scenarios)",
    )


def pytest_configure(config: pytest.Config) -> None:
    # Scenario items carry `root`, so `-m "not root"` leaves them out as it does the
    # project's own root tests; registered here for projects that do not define it.
    config.addinivalue_line("markers", "root: needs root and a real kernel")


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    if (
        file_path.suffix in (".yaml", ".yml")
        and _asked_for(parent.config, file_path)
        and _looks_like_scenario(file_path)
    ):
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


def _scenario_dirs(config: pytest.Config) -> list[Path]:
    return [Path(p).resolve() for p in config.getini("tcplab_scenarios")] or [
        config.rootpath.resolve() / "scenarios"
    ]


def _asked_for(config: pytest.Config, file_path: Path) -> bool:
    """Was this file named, or reached from a path inside a tcplab_scenarios directory?"""
    path, dirs = file_path.resolve(), _scenario_dirs(config)
    for arg in config.args:
        given = (config.invocation_params.dir / arg.split("::")[0]).resolve()
        if given == path or (path.is_relative_to(given) and any(given.is_relative_to(d) for d in dirs)):
            return True
    return False


def _looks_like_scenario(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return bool(_SCENARIO_KEY.search(f.read(_HEAD)))
    except OSError:
        return False


def _shown(path: Path, config: pytest.Config) -> str:
    try:
        return str(path.relative_to(config.invocation_params.dir))
    except ValueError:
        return str(path)


class ScenarioFile(pytest.File):
    def collect(self):
        from tcplab.format.load import load_scenario

        try:  # named as the user would name it, in messages and the result JSON
            scenario = load_scenario(_shown(self.path, self.config))
        except ScenarioError as e:
            raise self.CollectError(str(e)) from None  # shown as the loader's one line
        yield ScenarioItem.from_parent(self, name=scenario.name, scenario=scenario)


class ScenarioItem(pytest.Item):
    def __init__(self, *, scenario, **kwargs):
        super().__init__(**kwargs)
        self.scenario = scenario
        self.result = None
        self.add_marker("root")

    def setup(self) -> None:
        """Runs the lab; what keeps it from judging is an error here, not a failure."""
        from tcplab import runner
        from tcplab.lab.preflight import check_sysctls_exist

        if not is_root():
            pytest.skip(
                "tcplab scenarios need root (network namespaces, NFQUEUE, "
                "tracefs): run pytest as root, e.g. sudo .venv/bin/pytest"
            )
        try:
            check_sysctls_exist([self.scenario])
        except ScenarioError as e:
            pytest.fail(str(e), pytrace=False)
        self.result = runner.run_scenario(self.scenario)
        self._keep_json()
        self.add_report_section("call", "tcplab", _verdict_text(self.result))
        if self.result.verdict not in ("pass", "fail"):
            pytest.fail(
                f"verdict {self.result.verdict}: the lab could not judge "
                f"{self.scenario.name}: " + "; ".join(self.result.errors),
                pytrace=False,
            )

    def runtest(self) -> None:
        """The judging: the failed checks are the report (pytrace=False: no traceback)."""
        if self.result.verdict != "pass":
            failed = [c for c in self.result.checks if not c.passed]
            pytest.fail(
                f"{self.scenario.path}: {len(failed)} of {len(self.result.checks)} "
                f"checks failed\n{_verdict_text(self.result, failed)}",
                pytrace=False,
            )

    def _keep_json(self) -> None:
        out = self.config.getoption("tcplab_json")
        if out:
            Path(out).mkdir(parents=True, exist_ok=True)
            (Path(out) / f"{self.scenario.name}.json").write_text(
                json.dumps(self.result.to_json(), indent=1) + "\n"
            )

    def reportinfo(self):
        return self.path, 0, f"scenario {self.scenario.name}"


def _verdict_text(result, checks=None) -> str:
    """The verdict block of `tcplab run` as plain text: every check, or just `checks`."""
    from rich.console import Console

    from tcplab.render.live import check_line, print_verdict

    out = io.StringIO()
    console = Console(
        file=out, width=110, color_system=None, force_terminal=False, highlight=False, soft_wrap=True
    )
    if checks is None:
        print_verdict(console, result)
    else:
        for check in checks:
            console.print(check_line(check))
        for note in result.notes:
            console.print(f"  note: {note}")
    return out.getvalue().rstrip()
