"""The scenario JSON Schema (tcplab/format/schema.py, schema/scenario.schema.json)
against the loader it is generated from: it must accept every shipped scenario, reject
the bad-input entries it can judge alone, and name every key of the loader's tables."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from tcplab.core.faults import FORGES, HOST_FAULTS
from tcplab.core.scenario import APP_HOSTS, HOSTS
from tcplab.core.segments import ALIASES, VOCABULARY
from tcplab.format import keys
from tcplab.format.schema import COMMITTED, REGENERATE, build, doc_descriptions

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((ROOT / "scenarios").rglob("*.yaml"))
BAD = ROOT / "tests" / "bad_input"

# Bad-input entries whose mistake lies within one value or one mapping (unknown keys,
# wrong types, names, ranges, a missing key, a key that does not belong), so a schema
# can see it. The rest need the loader: rules across keys (a call expected but never
# made, a shadowed fault, until before at), YAML itself (duplicate keys, merge keys,
# alias bombs) or the running kernel (sysctls).
SCHEMA_CATCHES = """
accept-with-argument apps-empty-list apps-not-a-mapping apps-unknown-host binary-tag
bind-port-zero claim-bad-id claim-listed-twice claims-not-a-list client-without-connect
connect-on-server connect-port-too-big connect-server-to-itself connect-to-client
connect-without-host crash-with-until delay-negative delay-without-by delay-zero
drop-and-delay drop-with-by duplicate-by-negative duration-bool duration-compound
duration-negative duration-zero-timeout expect-bad-errno expect-count-bad-result
expect-count-empty expect-count-not-integer expect-host-not-a-mapping
expect-lasts-close expect-lasts-not-a-duration expect-lasts-unknown-bound expect-lasts-unknown-state
expect-model-bsd expect-not-a-mapping expect-repeat-result expect-result-is-a-number
expect-returns-after-own-segment expect-returns-after-unknown-segment expect-sleep-result
expect-sockets-close expect-sockets-negative
expect-unknown-host fault-from-router fault-is-a-string fault-unknown-key
fault-without-action faults-not-a-list flood-on-server flood-without-port
forge-rst-at-and-after forge-to-unknown-host host-fault-without-at hosts-not-a-mapping
hosts-unknown-host hosts-unknown-setting keepalive-off keepalive-unknown-key kill-router
linger-negative listen-backlog-negative listen-mapping-without-port listen-on-client
listen-port-bool listen-port-quoted listen-port-too-big listen-port-zero
listen-without-port missing-apps-client missing-apps-server missing-apps
missing-scenario-name missing-summary nth-empty-list nth-fraction nth-negative
nth-quoted nth-repeated nth-too-big nth-word nth-zero only-a-comment
only-document-marker rcvtimeo-zero reboot-without-until recv-zero repeat-listen
repeat-nested repeat-parallel-not-bool repeat-steps-empty repeat-times-zero
repeat-without-times retransmits-empty-timing retransmits-interval-garbage
retransmits-never-sent retransmits-unknown-segment scenario-name-is-a-date
scenario-name-is-a-list scenario-name-two-lines segment-name-is-a-number send-negative
send-too-big sends-negative shutdown-bad-direction sleep-is-a-mapping sleep-negative
sleep-unknown-unit stale-syn-with-to states-empty states-unknown step-is-a-number
step-two-calls strip-mss-of-data summary-empty syn-ack-from-client syncnt-too-big
sysctl-not-namespaced sysctl-value-a-list sysctl-value-two-lines sysctls-not-a-mapping
tolerance-abs-negative tolerance-rel-garbage tolerance-unknown-key top-level-list
top-level-null top-level-string unknown-call unknown-key-with-newline
unknown-segment-name unknown-top-level-key
""".split()


@pytest.fixture(scope="module")
def validator():
    schema = json.loads(COMMITTED.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_the_committed_schema_is_what_tcplab_schema_prints():
    proc = subprocess.run(
        [sys.executable, "-m", "tcplab", "schema"], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == COMMITTED.read_text(), (
        f"{COMMITTED.relative_to(ROOT)} is out of date; regenerate it: {REGENERATE}"
    )


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_scenario_validates(path, validator):
    errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(yaml.safe_load(path.read_text()))]
    assert not errors, errors


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_scenario_names_the_schema_on_its_second_line(path):
    claim, schema_line = path.read_text().splitlines()[:2]
    assert claim.startswith("# ")  # the claim stays the first line
    wanted = "# yaml-language-server: $schema=" + os.path.relpath(COMMITTED, path.parent)
    assert schema_line == wanted, f"add this as the second line: {wanted}"


def _where(error) -> str:
    """A jsonschema error's place in the loader's key syntax: faults[0].nth[1]."""
    out = ""
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _all(errors):
    for e in errors:
        yield e
        yield from _all(e.context)  # the reasons each branch of an anyOf/oneOf failed


@pytest.mark.parametrize("name", SCHEMA_CATCHES)
def test_the_schema_rejects_what_the_loader_rejects_at_the_same_key(name, validator):
    """Rejected, and for the loader's reason: some error sits at the key the loader
    names (`# expect: LINE KEY`) or at a mapping or list that holds it."""
    text = (BAD / f"{name}.yaml").read_text()
    key = re.match(r"# expect: \S+(?: (\S+))?\n", text)[1] or ""
    places = {_where(e) for e in _all(validator.iter_errors(yaml.safe_load(text)))}
    assert places, "the schema accepts it"
    top_level = not re.search(r"[.\[]", key)
    assert any(
        p == key or (p and re.match(re.escape(p) + r"[.\[]", key)) or (p == "" and top_level) for p in places
    ), (key, places)


def test_a_draft_07_validator_judges_alike():
    """yaml-language-server validates with draft-07 semantics: there the schema must
    accept and reject the same files (no 2019+ keyword, no check beside a $ref)."""
    schema = json.loads(COMMITTED.read_text())
    draft7 = jsonschema.Draft7Validator(schema)
    assert all(draft7.is_valid(yaml.safe_load(path.read_text())) for path in SCENARIOS)
    accepted = [
        name for name in SCHEMA_CATCHES if draft7.is_valid(yaml.safe_load((BAD / f"{name}.yaml").read_text()))
    ]
    assert accepted == []

    def beside_ref(node, where="#"):
        if isinstance(node, dict):
            if "$ref" in node and set(node) - {"$ref", "description"}:
                yield where
            for key, value in node.items():
                yield from beside_ref(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                yield from beside_ref(value, f"{where}/{i}")

    assert list(beside_ref(schema)) == []


def test_the_schema_accepts_a_minimal_scenario_and_rejects_one_typo(validator):
    minimal = {
        "scenario": "x",
        "summary": "y",
        "apps": {"server": [{"listen": 8080}, "accept"], "client": [{"connect": "server:8080"}]},
    }
    assert validator.is_valid(minimal)
    assert not validator.is_valid({**minimal, "timeuot": "5s"})


def _props(schema: dict, *path: str) -> dict:
    node = schema
    for part in path:
        node = node[part]
    return node["properties"]


def test_every_key_of_the_loaders_tables_is_in_the_schema():
    s = build("")
    d = s["$defs"]
    assert list(_props(s)) == list(keys.TOP_KEYS)
    assert list(_props(s, "properties", "hosts")) == list(HOSTS)
    assert list(_props(s["properties"]["hosts"]["properties"]["client"])) == list(keys.HOST_KEYS)
    calls = [set(_props(d[f"{host}Step"]["anyOf"][1])) for host in APP_HOSTS]
    assert set.union(*calls) == set(keys.STEP_FORMS)
    for host in APP_HOSTS:
        bare = d[f"{host}Step"]["anyOf"][0]["enum"]
        assert bare and all(keys.STEP_FORMS[call].bare_ok for call in bare)
        assert set(_props(s["properties"]["expect"]["properties"][host])) == set(keys.HOST_EXPECT_KEYS)
    assert set(_props(s["properties"]["expect"])) == set(keys.EXPECT_KEYS)
    assert set(_props(s["properties"]["expect"]["properties"]["tolerance"])) == set(keys.TOLERANCE_KEYS)
    assert set(_props(d["timing"])) == set(keys.TIMING_KEYS)
    assert set(_props(d["segmentFault"])) == set(keys.FAULT_KEYS)
    assert set(_props(d["hostFault"])) == set(keys.HOST_FAULT_KEYS)
    assert set(_props(d["forgeFault"])) == set(keys.FORGE_KEYS)
    assert d["forgeFault"]["properties"]["forge"]["enum"] == list(FORGES)
    assert set(HOST_FAULTS) <= set(_props(d["hostFault"]))
    assert d["segment"]["enum"] == [*VOCABULARY, *ALIASES]
    assert set(d["result"]["enum"]) == {"ok", *keys.ERRNO_NAMES}
    args = _props(d["clientStep"]["anyOf"][1]) | _props(d["serverStep"]["anyOf"][1])
    assert args["shutdown"]["enum"] == list(keys.SHUTDOWN_HOWS)
    # The mapping forms of step arguments: listen, keepalive, repeat, flood.
    for call, names in (
        ("listen", keys.LISTEN_KEYS),
        ("keepalive", keys.KEEPALIVE_KEYS),
        ("repeat", keys.REPEAT_KEYS),
        ("flood", keys.FLOOD_KEYS),
    ):
        forms = args[call].get("anyOf", [args[call]])
        assert [list(f["properties"]) for f in forms if "properties" in f] == [list(names)]
    lasts = _props(s["properties"]["expect"]["properties"]["client"])["lasts"]
    (lasting,) = [f for f in lasts["additionalProperties"]["anyOf"] if "properties" in f]
    assert list(lasting["properties"]) == list(keys.LASTING_KEYS)


@pytest.mark.parametrize(
    "state", ["SYN_SENT", "syn-sent", "TCP_FIN_WAIT1", "closed", "SYN_RCVD", " Time_Wait "]
)
def test_state_names_are_accepted_as_the_loader_folds_them(state, validator):
    scenario = {
        "scenario": "x",
        "summary": "y",
        "expect": {"client": {"states": [state]}},
        "apps": {"server": [{"listen": 8080}], "client": [{"connect": "server:8080"}]},
    }
    assert validator.is_valid(scenario)
    assert not validator.is_valid({**scenario, "expect": {"client": {"states": ["SYN_SEND"]}}})


def test_descriptions_come_from_the_docs_tables_sections_and_example():
    docs = doc_descriptions(
        "```yaml\nscenario: syn-lost   # name (required)\napps:  # both hosts\n```\n\n"
        "## hosts\n\nPer host,\nits sysctls.\n\n## apps\n\nA step is:\n\n"
        "| step | what |\n|---|---|\n| `keepalive: on` | SO_KEEPALIVE |\n\n"
        "| name | what it is |\n|---|---|\n| `keepalive` | a probe |\n"
        "| `delay: NAME` + `by: DURATION` | hold it \\| then `forward` it |\n"
    )
    assert docs == {
        "scenario": "name (required)",
        "apps": "both hosts",  # "A step is:" leads a table
        "hosts": "Per host, its sysctls.",
        "keepalive": "SO_KEEPALIVE",
        "step:keepalive": "SO_KEEPALIVE",
        "name:keepalive": "a probe",
        "delay": "hold it | then forward it",
        "name:delay": "hold it | then forward it",
        "by": "hold it | then forward it",
        "name:by": "hold it | then forward it",
    }
