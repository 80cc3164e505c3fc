"""The commands: one module per command, each with `define_flags()`, a `main(argv)` and `run()`.

Installed, each is a console command (`par-train`, `par-evaluate`, …; setup.cfg lists them)
and `python -m par <command>`; in a checkout, `scripts/<command>.py` calls the same `run`.
Only these modules (and par/config_flags.py, which they share) read flags. A command's flags
are defined when it runs (`run` hands `define_flags` to `cli.run`), not when it is imported:
commands share flag names, and any set of them imports into one process.
"""
