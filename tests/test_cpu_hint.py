"""precision.cpu_hint: the mixed_bfloat16 suggestion to float32 runs on CPUs with AMX."""

from par.train import precision

_FLAGS = "flags\t\t: fpu vme sse sse2 avx2 avx512f avx512_bf16 {extra}\n"
_CPUINFO = "processor\t: 0\nmodel name\t: Some CPU\n" + _FLAGS + "\nprocessor\t: 1\n" + _FLAGS


def _cpuinfo(tmp_path, extra):
  path = tmp_path / "cpuinfo"
  path.write_text(_CPUINFO.format(extra=extra))
  return path


def test_amx_is_read_from_the_flags_line(tmp_path):
  assert precision.has_amx(_cpuinfo(tmp_path, "amx_bf16 amx_tile"))
  # AVX512-BF16 alone is not AMX; a name that merely contains the flag is not it either.
  assert not precision.has_amx(_cpuinfo(tmp_path, "amx_tile"))
  assert not precision.has_amx(_cpuinfo(tmp_path, "xamx_bf16"))
  assert not precision.has_amx(tmp_path / "missing")


def test_the_hint_goes_to_float32_cpu_runs_only(tmp_path):
  amx = _cpuinfo(tmp_path, "amx_bf16")
  assert precision.cpu_hint("float32", amx) == precision.BFLOAT16_HINT
  assert "--mixed_precision=mixed_bfloat16" in precision.BFLOAT16_HINT
  assert precision.cpu_hint("mixed_bfloat16", amx) is None
  assert precision.cpu_hint("mixed_float16", amx) is None
  assert precision.cpu_hint("float32", _cpuinfo(tmp_path, "")) is None
