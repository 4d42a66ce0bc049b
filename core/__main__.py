"""``python -m core``: what the library sees of this CPU and which ISA path it runs."""
from . import cpu

print(cpu.report())
