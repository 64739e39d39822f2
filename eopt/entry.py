"""The ``eopt`` executable.

``eopt airflow ARGS`` is the alias operators give every Airflow command (the operations guide's
``airflow() { eopt airflow "$@"; }``), so it replaces itself by the airflow CLI before the rest of
the CLI (pandas, SQLAlchemy, Alembic) is imported: about a second less per command. Every other
command is ``eopt.cli``'s, where ``eopt airflow`` is also listed and runs the same ``exec_airflow``.
"""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:2] == ["airflow"]:
        from core.settings import Settings, SettingsError
        from eopt.airflow_home import exec_airflow

        try:
            settings = Settings.from_env()
        except SettingsError as exc:  # as the CLI reports a malformed setting: exit 2, naming the variable
            print(f"Error: {exc}", file=sys.stderr)
            sys.exit(2)
        exec_airflow(settings, sys.argv[2:])
    from eopt.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
