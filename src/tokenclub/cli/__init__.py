"""The `tokenclub` command-line program: Rich output for people, `--json` for machines."""
