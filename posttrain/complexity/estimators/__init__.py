"""Complexity estimators: each is a program whose length is counted honestly.

A strategy returns, per program, the bits of what it carries (`payload_bits`: text or data coded under the
checkpoint, posttrain.complexity.coding, or entropy-coded parameters), its driver's columns
(posttrain.complexity.program_length: the compressed canonical source of the strategy module and its hash)
and the score of every test item. posttrain.complexity.measure adds the shared harness and the totals.
"""
