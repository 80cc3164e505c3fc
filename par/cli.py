"""What every script in `scripts/` shares: clean exits and a quiet TensorFlow import.

Scripts call `run(main)` instead of `absl.app.run(main)`. On top of absl it gives:
- a `ParError` becomes one line, `error: <message>`, on stderr and exit status 1, and so does
  a failure to write (a read-only place, a full disk: `errors.explain_write_error`);
- output into a closed pipe (`| head`) ends quietly with status 141, as shells report it;
  a closed stderr never ends anything (`_LogStream`, `signals.write_stderr`: a run stopped by the
  Ctrl-C that also stopped its `| tee` still saves);
- SIGTERM unwinds like Ctrl-C (as `par.errors.Interrupted`), so `finally` blocks remove
  temporary files, and the exit status is 128 + the signal number (130 for Ctrl-C, 143 for
  SIGTERM), as shells report it. Code that must finish something first (training saves a
  checkpoint) installs its own handlers and raises `Interrupted` when it is done. Ctrl-C
  interrupts even a script started with SIGINT ignored (a background job of a shell
  script), as training always did.
"""

import contextlib
import logging as std_logging
import os
import signal
import sys
from pathlib import Path

from absl import app
from absl import flags
from absl import logging

from par import signals
from par.errors import Interrupted
from par.errors import ParError  # Re-exported for scripts.
from par.errors import explain_write_error


def _raise_interrupted(signum, frame):
  del frame
  raise Interrupted(signum)


class _LogStream:
  """sys.stderr, made to survive its reader: once a write finds the pipe closed (`2>&1 | tee
  log` and Ctrl-C, which stops tee too), the descriptor is pointed at /dev/null and the
  program goes on, so a training stopping on that Ctrl-C still saves its checkpoint and
  exits 130 (it died of SIGPIPE or worse on the next log line). The log file in the run
  directory still gets every line. stdout keeps its `| head` behaviour: output nobody reads
  ends the program."""

  def __init__(self, stream):
    self._stream = stream

  def write(self, text):
    try:
      return self._stream.write(text)
    except (BrokenPipeError, ValueError):  # (ValueError: the stream was closed)
      silence(self._stream)
      return len(text)

  def flush(self):
    try:
      self._stream.flush()
    except (BrokenPipeError, ValueError):
      silence(self._stream)

  def __getattr__(self, name):
    return getattr(self._stream, name)


def silence(stream):
  """Points a stream's descriptor at /dev/null (its reader has gone)."""
  with contextlib.suppress(ValueError):  # (a closed stream has no descriptor)
    signals.to_devnull(stream.fileno())


def run(main, command=None, define_flags=None):
  """Runs an absl `main(argv)` with the exits described in the module docstring.

  Args:
    main: the command's `main(argv)`.
    command: the name of the module of par/commands/ that defines `main` and its flags. Its
      flags and docstring become those `--help` shows, whatever file started the process (a
      console script, `python -m par`, a scripts/ caller): absl shows the key flags of
      sys.argv[0] and the docstring of __main__.
    define_flags: defines the command's flags on absl's FLAGS, called here rather than at
      import: commands share flag names (`--split`, `--model_dir`, every training flag), so
      any set of them imports into one process (a notebook, a test) and only the one that
      runs defines its own.
  """
  if define_flags is not None:
    define_flags()
  if command is not None and command != "__main__":
    for flag in flags.FLAGS.get_key_flags_for_module(command):
      flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
    sys.modules["__main__"].__doc__ = sys.modules[command].__doc__

  def guarded_main(argv):
    signal.signal(signal.SIGTERM, _raise_interrupted)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    _guard_stderr()
    try:
      return main(argv)
    except ParError as e:
      sys.exit(f"error: {e}")
    except BrokenPipeError:  # `script | head`: the reader has gone; so do we, quietly.
      signals.to_devnull(sys.stdout.fileno())
      sys.exit(128 + signal.SIGPIPE)
    except KeyboardInterrupt:
      print("interrupted", file=sys.stderr)
      sys.exit(128 + signal.SIGINT)
    except Interrupted as e:
      print("interrupted" if e.signum == signal.SIGINT else "terminated", file=sys.stderr)
      sys.exit(128 + e.signum)
    except Exception as e:  # A read-only place, a full disk: one line; anything else, a bug.
      message = explain_write_error(e)
      if message is None:
        raise
      sys.exit(f"error: {message}")

  try:
    argv = expand_flagfiles(sys.argv)
  except ParError as e:
    sys.exit(f"error: {e}")
  app.run(guarded_main, argv=argv)


def _guard_stderr():
  """sys.stderr and absl's log handler write through `_LogStream`."""
  if not isinstance(sys.stderr, _LogStream):
    sys.stderr = _LogStream(sys.stderr)
  from absl import logging

  handler = logging.get_absl_handler().python_handler
  if not isinstance(handler.stream, _LogStream):
    handler.stream = _LogStream(handler.stream)


CONFIGS = Path(__file__).resolve().parent / "configs"  # the packaged flagfiles


def _flagfile(path):
  """A flagfile's path: as given if it exists, else the packaged config of that name (with or
  without `.flags`), so that `--flagfile=configs/tiny.flags` works outside a checkout."""
  if Path(path).is_file():
    return Path(path)
  name = Path(path).name
  for candidate in (CONFIGS / name, CONFIGS / f"{name}.flags"):
    if candidate.is_file():
      return candidate
  known = ", ".join(sorted(p.stem for p in CONFIGS.glob("*.flags")))
  raise ParError(f"flagfile {path} does not exist, nor is it a packaged config ({known})")


def expand_flagfiles(argv, _seen=()):
  """The arguments with every --flagfile spliced in, as absl reads them (a flag per line;
  blank lines and lines starting with # or // skipped; flagfiles inside flagfiles), each found
  by `_flagfile`. absl then sees no flagfile to open."""
  expanded, args = [], list(argv)
  while args:
    arg = args.pop(0)
    if arg == "--":
      return expanded + [arg] + args
    name = None
    for prefix in ("--flagfile=", "-flagfile="):
      if arg.startswith(prefix):
        name = arg[len(prefix) :]
    if arg in ("--flagfile", "-flagfile") and args:
      name = args.pop(0)
    if name is None:
      expanded.append(arg)
      continue
    path = _flagfile(name).resolve()
    if path in _seen:
      raise ParError(f"flagfile {name} includes itself")
    try:
      lines = path.read_text().splitlines()
    except OSError as e:
      raise ParError(f"cannot read flagfile {path}: {e.strerror}") from None
    except UnicodeDecodeError as e:
      raise ParError(
        f"flagfile {path} is not UTF-8 text (byte {e.start}): save it as UTF-8"
      ) from None
    inner = [
      line.strip() for line in lines if line.strip() and not line.strip().startswith(("#", "//"))
    ]
    expanded += expand_flagfiles(inner, _seen + (path,))
  return expanded


@contextlib.contextmanager
def quiet_native_stderr():
  """Hides what native code writes to file descriptor 2 inside the block.

  TensorFlow 2.21 prints several notices from C++ at import and at device set-up (oneDNN,
  missing CUDA drivers) before absl logging is initialised, so `TF_CPP_MIN_LOG_LEVEL` cannot
  silence them. Set PAR_VERBOSE_TF=1 to see them.
  """
  if os.environ.get("PAR_VERBOSE_TF") == "1":
    yield
    return
  sys.stderr.flush()
  saved = os.dup(2)
  devnull = os.open(os.devnull, os.O_WRONLY)
  os.dup2(devnull, 2)
  try:
    yield
  finally:
    sys.stderr.flush()
    os.dup2(saved, 2)
    os.close(saved)
    os.close(devnull)


def import_tensorflow():
  """Imports TensorFlow and initialises its devices with the start-up notices hidden.

  Later C++ messages below WARNING (e.g. tf.data's buffer-size notes) are hidden too, unless
  PAR_VERBOSE_TF=1 or TF_CPP_MIN_LOG_LEVEL is set.
  """
  if os.environ.get("PAR_VERBOSE_TF") != "1":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
  with quiet_native_stderr():
    import tensorflow as tf

    tf.config.list_physical_devices()
  std_logging.getLogger("tensorflow").addFilter(one_trace_per_model)
  return tf


_OUR_TRACED = ("of <par.", "initial_memory.<locals>")  # how TF names our traced functions
_said_traces = []


def one_trace_per_model(record):
  """Hides TensorFlow's "triggered tf.function retracing" warnings about par's own functions,
  saying once why: each model a process trains or evaluates (a pipeline trains many) gets its
  own training loop and evaluation loop, each traced once, and TensorFlow counts the traces
  of one function's code across those objects. tests/test_pipeline.py checks that no object
  is traced more often than its inputs' shapes ask. Any other function's warning stays."""
  message = record.getMessage()
  if "triggered tf.function retracing" not in message or not any(
    ours in message for ours in _OUR_TRACED
  ):
    return True
  if not _said_traces:
    _said_traces.append(True)
    logging.info(
      "TensorFlow's retracing warnings are hidden: each model trained or evaluated in this "
      "process has its own loops, traced once each, which TensorFlow counts as retracing"
    )
  return False


def usable_cores():
  """The cores this process may run on: its CPU affinity (taskset, a container's cpuset,
  a parent that pinned it), which os.cpu_count() ignores."""
  if hasattr(os, "sched_getaffinity"):
    return len(os.sched_getaffinity(0))
  return os.cpu_count() or 1


def configure_threads(inter_op=-1, intra_op=-1):
  """Sets TensorFlow's thread pools; call after `import_tensorflow`, before any op runs.

  -1 is "auto": without a GPU, one thread per op (intra_op 1) and one op in flight per core
  (inter_op = `usable_cores()`); with a GPU, TensorFlow's defaults. PAR models are made of
  many small ops, which gain little from splitting across cores and lose to the
  synchronisation: on the 2-core reference machine auto trained the base SuperNet 1.10 and
  1.17 times faster than TensorFlow's defaults in two runs (docs/BENCHMARKS.md). 0 is
  TensorFlow's default.
  """
  import tensorflow as tf

  if -1 in (inter_op, intra_op) and not tf.config.list_physical_devices("GPU"):
    inter_op = usable_cores() if inter_op == -1 else inter_op
    intra_op = 1 if intra_op == -1 else intra_op
  tf.config.threading.set_inter_op_parallelism_threads(max(inter_op, 0))
  tf.config.threading.set_intra_op_parallelism_threads(max(intra_op, 0))
