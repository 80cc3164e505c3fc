"""par as an installed tool: console commands, `python -m par`, packaged flagfiles."""

import configparser
import json
import subprocess
import sys
import zipfile

import pytest

from helpers import ROOT
from helpers import error_line
from helpers import run_script
from par import cli


def test_every_command_has_a_console_entry_point_and_a_caller_in_scripts():
  setup = configparser.ConfigParser()
  setup.read(ROOT / "setup.cfg")
  entries = dict(
    line.split(" = ")
    for line in setup["options.entry_points"]["console_scripts"].strip().splitlines()
  )
  commands = sorted(p.stem for p in (ROOT / "par" / "commands").glob("[a-z]*.py"))
  assert sorted(entries) == sorted(f"par-{c.replace('_', '-')}" for c in commands)
  for command in commands:
    assert entries[f"par-{command.replace('_', '-')}"] == f"par.commands.{command}:run"
    caller = (ROOT / "scripts" / f"{command}.py").read_text()
    assert f"from par.commands import {command}" in caller and len(caller.splitlines()) < 15


def test_every_command_imports_beside_every_other_and_defines_its_flags_when_it_runs():
  # In a fresh process: every command module imported into one process defines no flag (they
  # share names: --split, --model_dir, the training flags), and each defines its own when
  # asked.
  script = """
import importlib, json, pkgutil
from absl import app, flags, logging  # absl's own flags, defined at their import
from par import commands
before = set(flags.FLAGS)
names = sorted(m.name for m in pkgutil.iter_modules(commands.__path__))
modules = [importlib.import_module(f"par.commands.{name}") for name in names]
defined = sorted(set(flags.FLAGS) - before)
own = {}
for name, module in zip(names, modules):
  fresh = set(flags.FLAGS)
  module.define_flags()
  own[name] = sorted(set(flags.FLAGS) - fresh)
  for flag in own[name]:
    delattr(flags.FLAGS, flag)  # so that the next command defines its own
print(json.dumps({"names": names, "defined": defined, "own": own}))
"""
  result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
  assert result.returncode == 0, result.stderr[-2000:]
  report = json.loads(result.stdout)
  assert len(report["names"]) == 14 and report["defined"] == []
  assert {"split", "model_dir"} <= set(report["own"]["evaluate"])
  assert {"split", "data_dir", "verify"} == set(report["own"]["check_data"])
  assert {"work_dir", "jobs", "seeds", "d_model", "architecture"} <= set(report["own"]["pipeline"])


def test_python_dash_m_par_runs_a_command_with_its_help():
  result = subprocess.run(
    [sys.executable, "-m", "par", "optimal_cuts", "--help"], capture_output=True, text=True
  )
  assert "--clusters" in result.stdout  # (absl exits 1 after --help)
  assert result.stdout.startswith("Exact adaptive-softmax cutoffs from the data")  # its docstring
  result = subprocess.run([sys.executable, "-m", "par", "nope"], capture_output=True, text=True)
  assert result.returncode != 0 and "commands: benchmark, build_data, check_data" in result.stderr


def test_flagfiles_are_spliced_in_from_a_path_or_the_packaged_configs(tmp_path):
  inner = tmp_path / "inner.flags"
  inner.write_text("# a comment\n\n--d_model=64\n// another\n--cutoffs=none\n")
  outer = tmp_path / "outer.flags"
  outer.write_text(f"--flagfile={inner}\n  --n_blocks=4  \n")
  argv = ["prog", "--seed=1", f"--flagfile={outer}", "--d_model=32", "--", "--flagfile=x"]
  assert cli.expand_flagfiles(argv) == [
    "prog",
    "--seed=1",
    "--d_model=64",
    "--cutoffs=none",
    "--n_blocks=4",
    "--d_model=32",
    "--",
    "--flagfile=x",
  ]
  packaged = cli.expand_flagfiles(["--flagfile", "/nowhere/configs/tiny.flags"])
  assert packaged == cli.expand_flagfiles(["--flagfile=tiny"])
  assert "--n_blocks=4" in packaged and "--data_dir=data/wikitext2_bsz32_seqlen32" in packaged
  # par_wt103_p5 includes txl_wt103_base by a path relative to a checkout: found anywhere.
  p5 = cli.expand_flagfiles(["--flagfile=par_wt103_p5"])
  assert "--init=transformer_xl" in p5 and p5[-1].startswith("--architecture=fsfff")
  outer.write_text(f"--flagfile={outer}\n")
  with pytest.raises(cli.ParError, match="includes itself"):
    cli.expand_flagfiles([f"--flagfile={outer}"])
  with pytest.raises(cli.ParError, match=r"flagfile nowhere\.flags does not exist, nor .*tiny"):
    cli.expand_flagfiles(["--flagfile=nowhere.flags"])
  outer.write_bytes(b"--d_model=64\n--name=caf\xe9\n")  # Latin-1, not UTF-8
  with pytest.raises(cli.ParError, match=r"outer\.flags is not UTF-8 text \(byte 23\)"):
    cli.expand_flagfiles([f"--flagfile={outer}"])
  result = run_script("scripts/train.py", "--flagfile=nowhere.flags", "--print_config")
  assert "does not exist, nor is it a packaged config" in error_line(result)


@pytest.mark.slow
def test_the_wheel_holds_the_commands_and_the_configs(tmp_path):
  result = subprocess.run(
    [
      sys.executable,
      "-m",
      "pip",
      "wheel",
      "--no-deps",
      "--no-build-isolation",
      "-w",
      tmp_path,
      ".",
    ],
    cwd=ROOT,
    capture_output=True,
    text=True,
  )
  assert result.returncode == 0, result.stderr[-2000:]
  (wheel,) = tmp_path.glob("par-*.whl")
  with zipfile.ZipFile(wheel) as z:
    names = z.namelist()
    entry_points = z.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
  configs = {n.split("/")[-1] for n in names if n.startswith("par/configs/")}
  assert configs == {p.name for p in (ROOT / "par" / "configs").glob("*.flags")}
  assert "par-train = par.commands.train:run" in entry_points
  assert "par/commands/train.py" in names


def test_tensorflows_retracing_warnings_about_our_loops_are_hidden_once_said(monkeypatch):
  # Only TensorFlow's retracing warnings that name par's own loops are hidden (each model
  # has its own, traced once: tests/test_pipeline.py counts the traces), with one line.
  import logging as std_logging

  from par import cli

  said = []
  monkeypatch.setattr(cli, "_said_traces", [])
  monkeypatch.setattr(cli.logging, "info", lambda *a: said.append(a[0]))

  def record(name):
    message = f"5 out of the last 5 calls to {name} triggered tf.function retracing. Tracing"
    return std_logging.LogRecord("tensorflow", std_logging.WARNING, "x.py", 1, message, (), None)

  ours = "<bound method StepLoop._run of <par.train.steps.StepLoop object at 0x7f>>"
  assert not cli.one_trace_per_model(record(ours))
  assert not cli.one_trace_per_model(record("<function initial_memory.<locals>.f at 0x7f>"))
  assert cli.one_trace_per_model(record("<function user_code at 0x7f>"))
  other = std_logging.LogRecord("tensorflow", 30, "x.py", 1, "something else", (), None)
  assert cli.one_trace_per_model(other)
  assert len(said) == 1 and "retracing warnings are hidden" in said[0]
