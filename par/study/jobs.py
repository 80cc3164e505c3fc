"""A study's independent pieces of work (trainings, rankings), on Ray: here, or on a cluster.

A training of the small models this project studies does not keep two cores busy: its
~4,000 ops a step leave one waiting (docs/BENCHMARKS.md). Two trainings in two processes
with one thread each use both, and nothing about a run depends on its thread count (the
tests check it), so `--jobs=2` changes when a run finishes, never what it computes. A study
of tens of trainings is spread over several machines the same way (`--ray_address`).

`run_all` hands the calls to Ray (https://docs.ray.io), as tasks with their resources
(`Engine.job_cpus`, `job_gpus`): with `--jobs=N` on a Ray instance it starts on this machine
with N x job_cpus CPUs, with `--ray_address` on a running cluster. Ray, not a pool of ours,
because what a study left running overnight needs is what Ray does and a home-made pool did
not (a worker killed by the out-of-memory killer hung `multiprocessing.Pool` forever):

- a worker that dies (SIGKILL, out of memory, a lost node) is run again, up to
  `Engine.retries` times; a training resumes from its last checkpoint. After that, or when a
  call raises, the failure is one line naming the run, said when it happens; the others
  go on, and `run_all` then raises one ParError listing the failed (their results, and
  every finished run, are kept: the same command retries only them);
- Ctrl-C or SIGTERM here cancels every call once: Ray delivers one SIGINT to each running
  worker, which a training takes as its stop (it checkpoints, then ends), and the calls not
  started never start; then `Interrupted`, exit 130 or 143, and the same command resumes.
  Workers run in process groups of their own, so a terminal's Ctrl-C reaches only this
  process. A second Ctrl-C stops the workers at once (as a second Ctrl-C stops a training);
- progress is one line per finished call, with the count done, running and left and the
  time left from the finished ones' durations; a worker prints nothing here (Ray's
  `log_to_driver` is off): each training's log is its run directory's training.log, and
  Ray's own logs are in its session directory (/tmp/ray/session_latest/logs);
- a worker runs one call and exits (`max_calls=1`): TensorFlow's thread pools are set once
  per process, and a run's memory goes back to the system when it ends.

On a cluster the work directory must be storage every node sees at the same path (NFS, a
shared disk), and every node needs the same environment (this package and its
dependencies): the calls' results and checkpoints are written where a run on one machine
writes them. docs/GUIDE.md "Scale out" says how to start one.
"""

import dataclasses
import socket
import time

from absl import logging

from par import cli
from par.errors import Interrupted
from par.errors import ParError

# How long the calls get to checkpoint and end after a stop, before they are stopped at once.
STOP_SECONDS = 600.0
_WAIT_SECONDS = 0.5  # between two looks at the calls: a signal here is handled within it


@dataclasses.dataclass(frozen=True)
class Engine:
  """Where a study's calls run: here one after another (jobs 1, no address), or on Ray."""

  jobs: int = 1  # at once on a Ray instance started on this machine
  address: str | None = None  # a running Ray cluster's, or "auto" (then jobs is not used)
  job_cpus: int = 1  # each call's CPUs (its TensorFlow threads)
  job_gpus: float = 0.0  # each call's GPUs (Ray sets CUDA_VISIBLE_DEVICES for it)
  retries: int = 2  # runs again of a call whose worker died

  def __post_init__(self):
    if self.jobs < 1:
      raise ParError(f"--jobs must be at least 1, got {self.jobs}")
    if self.job_cpus < 1 or self.job_gpus < 0 or self.retries < 0:
      raise ParError(
        "--job_cpus must be at least 1, --job_gpus and --job_retries 0 or more, got "
        f"{self.job_cpus}, {self.job_gpus} and {self.retries}"
      )

  @property
  def here(self):
    """Whether the calls run in this process, one after another."""
    return self.address is None and self.jobs == 1


def check_address(address, seconds=5.0):
  """ParError unless a Ray head answers at HOST:PORT (`auto` is found by Ray itself): an
  unreachable address made Ray retry for minutes, printing C++ warnings."""
  if not address or address == "auto":
    return
  host, _, port = address.rpartition(":")
  if not host or not port.isdigit():
    raise ParError(f"--ray_address takes auto or HOST:PORT, got {address}")
  try:
    socket.create_connection((host, int(port)), timeout=seconds).close()
  except OSError as e:
    reason = e.strerror or type(e).__name__
    raise ParError(
      f"cannot connect to Ray at {address}: {reason} (is `ray start --head` running there?)"
    ) from None


def engine_of(jobs):
  """An `Engine` from an Engine or a number of jobs."""
  return jobs if isinstance(jobs, Engine) else Engine(jobs=int(jobs))


def run_all(calls, jobs=1, names=None):
  """[function(*args) for function, args in calls], in order.

  Args:
    calls: (function, args) pairs; functions and arguments must pickle (module-level
      functions, plain data) unless they run here.
    jobs: an `Engine`, or a number of calls at once on this machine (1: here).
    names: what to call each call in the progress and failure lines (e.g. its run).

  Raises:
    ParError: calls failed (each said in its line as it failed); the others finished.
    Interrupted: a signal stopped them; every call was sent one stop and ended.
    Any exception of a call, when the calls run here.
  """
  calls, engine = list(calls), engine_of(jobs)
  names = list(names) if names is not None else [getattr(f, "__name__", "call") for f, _ in calls]
  if engine.here or not calls:
    return [function(*args) for function, args in calls]
  ray = _start(engine)
  task = ray.remote(
    num_cpus=engine.job_cpus,
    num_gpus=engine.job_gpus,
    max_calls=1,
    max_retries=engine.retries,
    retry_exceptions=False,
  )(_work)
  refs = [task.remote(function, args, engine.job_cpus) for function, args in calls]
  index = {ref: k for k, ref in enumerate(refs)}
  progress = _Progress(len(calls), _slots(ray, engine))
  results, failed, pending = [None] * len(calls), [], list(refs)
  try:
    while pending:
      done, pending = ray.wait(pending, num_returns=1, timeout=_WAIT_SECONDS)
      for ref in done:
        k = index[ref]
        try:
          results[k], seconds = ray.get(ref)
        except Exception as e:
          failed.append(names[k])
          logging.error("failed: %s: %s", names[k], _cause(e, engine))
          progress.add(None, len(pending))
          continue
        progress.add(seconds, len(pending))
        logging.info("done: %s; %s", names[k], progress)
  except (KeyboardInterrupt, Interrupted) as e:
    _stop(ray, pending)
    raise e if isinstance(e, Interrupted) else Interrupted(2) from None
  if failed:
    raise ParError(
      f"{len(failed)} of {len(calls)} jobs failed: {', '.join(failed)} (each said why above; "
      "the others finished and are kept: run the same command again to retry them)"
    )
  return results


def fill(results, calls, jobs=1, names=None):
  """`results` with each None replaced by the result of its call (the calls of the others
  are not made): `run_all` over the missing ones. Each is logged as it is queued."""
  missing = [k for k, r in enumerate(results) if r is None]
  names = list(names) if names is not None else [str(k) for k in range(len(calls))]
  for k in missing:
    logging.info("to run: %s", names[k])
  results = list(results)
  for k, result in zip(
    missing, run_all([calls[k] for k in missing], jobs, [names[k] for k in missing])
  ):
    results[k] = result
  return results


def _start(engine):
  """Ray, started here for `engine.jobs` calls at once or connected to its cluster; once
  per process (the same instance serves every `run_all` of a pipeline)."""
  try:
    import ray
  except ImportError:
    raise ParError("--jobs above 1 and --ray_address need Ray: pip install 'ray>=2.40'") from None
  wanted = (engine.address, engine.jobs * engine.job_cpus, engine.job_gpus)
  if ray.is_initialized() and _started.get("with") == wanted:
    return ray
  if ray.is_initialized():
    ray.shutdown()
  settings = dict(
    include_dashboard=False,
    log_to_driver=False,  # no worker's line on this terminal: each run has its own log
    logging_level="ERROR",
  )
  check_address(engine.address)
  try:
    if engine.address:
      ray.init(address=engine.address, **settings)
    else:
      # "local": a new instance of this command's, even beside a cluster on this machine.
      gpus = int(-(-engine.job_gpus * engine.jobs // 1))
      ray.init(address="local", num_cpus=wanted[1], num_gpus=gpus, **settings)
  except Exception as e:  # Ray's errors of connection, authentication, resources
    where = f"connect to Ray at {engine.address}" if engine.address else "start Ray here"
    line = (str(e).strip().splitlines() or [type(e).__name__])[-1]
    raise ParError(f"cannot {where}: {line}") from None
  _started["with"] = wanted
  _route_raylet_errors()
  return ray


def _route_raylet_errors():
  """Ray's driver prints its raylet's errors (a worker died: six lines of advice) on stdout,
  where the pipeline prints its tables; `run_all` says each failure in one line of its own,
  so they go to the log at debug level (--v=1 shows them). Ray's private printer: when a
  version of Ray moves it, its lines print again, nothing else changes."""
  import ray._private.worker as driver

  printer = getattr(driver, "print_to_stdstream", None)
  if printer is None or getattr(printer, "routed", False):
    return

  def routed(data, *args, **kwargs):
    if data.get("pid") == "raylet":
      for line in data.get("lines", []):
        logging.vlog(1, "ray: %s", line)
      return None
    return printer(data, *args, **kwargs)

  routed.routed = True
  driver.print_to_stdstream = routed


_started = {}


def _slots(ray, engine):
  """How many calls run at once: --jobs here, the cluster's CPUs over each call's on one."""
  if not engine.address:
    return engine.jobs
  cpus = int(ray.cluster_resources().get("CPU", 1))
  return max(cpus // engine.job_cpus, 1)


def _work(function, args, threads):
  """In a Ray worker: TensorFlow with `threads` threads, warnings only on the worker's
  stderr (Ray's log files), then the call; (its result, its seconds). A function that does
  not use TensorFlow may say so (`function.without_tensorflow = True`): its worker then
  skips TensorFlow's import, 4 to 5 s of CPU."""
  import logging as std_logging

  started = time.monotonic()
  if not getattr(function, "without_tensorflow", False):
    cli.import_tensorflow()
    cli.configure_threads(1, threads)
  root = std_logging.getLogger()
  if not root.handlers:
    root.addHandler(std_logging.StreamHandler())
  for handler in root.handlers + [logging.get_absl_handler()]:
    handler.setLevel(std_logging.WARNING)
  return function(*args), time.monotonic() - started


def _cause(error, engine):
  """One line for what ended a call."""
  import ray.exceptions as errors

  if isinstance(error, errors.RayTaskError):
    cause = error.cause if error.cause is not None else error
    first = (str(cause).strip().splitlines() or [type(cause).__name__])[-1]
    return f"{type(cause).__name__}: {first}" if not isinstance(cause, ParError) else str(cause)
  if isinstance(error, (errors.WorkerCrashedError, errors.NodeDiedError)):
    return (
      f"its worker died {engine.retries + 1} times (killed, out of memory, or its node was "
      "lost); its checkpoints are kept"
    )
  return f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0]}"


def _stop(ray, pending):
  """Sends each call still running or queued one stop (a SIGINT in its worker: a training
  checkpoints and ends), then waits for them: STOP_SECONDS, or until a second signal."""
  logging.warning(
    "stopping %d unfinished jobs: those running save a checkpoint, then end; the others do "
    "not start (again to stop them now)",
    len(pending),
  )
  for ref in pending:
    ray.cancel(ref)
  deadline = time.monotonic() + STOP_SECONDS
  try:
    while pending and time.monotonic() < deadline:
      _, pending = ray.wait(pending, num_returns=len(pending), timeout=_WAIT_SECONDS)
  except (KeyboardInterrupt, Interrupted):
    pass
  for ref in pending:  # a second signal, or past the deadline
    ray.cancel(ref, force=True)


class _Progress:
  """The study's one progress line: done, running, left, and the time left."""

  def __init__(self, total, slots):
    self.total, self.slots = total, slots
    self.done, self.failed, self.seconds = 0, 0, []

  def add(self, seconds, pending):
    self.done += 1
    self.pending = pending
    if seconds is None:
      self.failed += 1
    else:
      self.seconds.append(seconds)

  def __str__(self):
    running = min(self.pending, self.slots)
    line = f"{self.done} of {self.total} done"
    line += f" ({self.failed} failed)" if self.failed else ""
    line += f", {running} running"
    if self.seconds and self.pending:
      mean = sum(self.seconds) / len(self.seconds)
      left = mean * -(-self.pending // self.slots)
      line += f", about {_duration(left)} left"
    return line


def _duration(seconds):
  return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{max(round(seconds / 60), 1)} min"
