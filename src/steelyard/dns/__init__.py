"""Authoritative DNS answering from the pools' health (``[[dns]]``): zone data, answers, servers."""
