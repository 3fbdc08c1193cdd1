"""Training: the runner that owns the loop, its steps, sessions, checkpoints and scale-out.

``runner`` (one run end to end), ``session`` and ``engine`` (the loop over a plan's steps),
``stages`` (the step types a method declares), ``losses``, ``samplers``, ``ema``,
``ssl_parts`` (shared semi-supervised pieces), ``metrics`` and ``diagnostics`` (test accuracy
and pseudo-label quality), ``checkpoint``, ``distributed``, ``run_identity`` and ``sweep``.
"""
