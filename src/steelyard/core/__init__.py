"""Pure, sans-IO core: no sockets, no asyncio, no wall clock, no global random.

Everything here takes its clock and its ``random.Random`` from the caller so that
tests (and the simulator) can drive it deterministically.
"""
