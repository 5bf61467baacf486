"""Generated scenarios (issue 11): seeded files composed from the format's own
vocabulary, to judge the kernel model on scenarios nobody tuned it to. vocabulary.py
holds the tables and the plan as data, shapes.py the app schedules, bounds.py how long
a draw can take, draft.py the draw from a seed and the YAML it is written as."""
