"""The memory of training steps in one process, as TensorFlow's allocator counts it.

A thin caller of `par.commands.step_memory` (installed: `par-step-memory`); its docstring and
`--help` say the rest.
"""

from par.commands import step_memory

if __name__ == "__main__":
  step_memory.run()
