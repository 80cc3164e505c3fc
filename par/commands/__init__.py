"""The commands: one module per command, each with its absl flags, a `main(argv)` and `run()`.

Installed, each is a console command (`par-train`, `par-evaluate`, …; setup.cfg lists them)
and `python -m par <command>`; in a checkout, `scripts/<command>.py` calls the same `run`.
Only these modules (and par/config_flags.py, which they share) read flags.
"""
