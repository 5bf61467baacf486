"""The scenario file format: YAML text -> tcplab.core.scenario.Scenario (load.py), and
the JSON Schema of the same format (schema.py), both from the key tables in keys.py."""
