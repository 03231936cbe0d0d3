"""The eBPF machine: instructions, encoding, assembly, checks and execution.

This layer knows nothing of XDP or drivers (see ../../DESIGN.md in shared/ §1).
"""
from . import opcodes
from .assembler import assemble
from .disasm import disassemble, format_insn
from .errors import BpfAssembleError, BpfDecodeError, BpfError, BpfExecuteError, BpfVerifyError
from .insn import Insn, Program, decode, encode
from .machine import CallContext, Env, Machine
from .run import RunResult, run, run_detailed, run_in
from .verify import verify

__all__ = [
    "Insn", "Program", "encode", "decode", "assemble", "disassemble", "format_insn", "run",
    "run_detailed", "run_in", "RunResult", "verify", "Env", "CallContext", "Machine", "opcodes",
    "BpfError", "BpfDecodeError", "BpfAssembleError", "BpfVerifyError", "BpfExecuteError",
]
