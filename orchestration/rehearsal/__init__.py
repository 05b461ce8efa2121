"""`wavepilot rehearse`: predict migration day on the embedded system, on the simulated clock.

- ``profile``: the model a team tunes (replication bandwidth, job durations, quotas, people);
- ``observation``: what one run of the embedded system recorded (plain data);
- ``report``: the prediction computed from an observation (pure; JSON, HTML, terminal);
- ``run``: runs the embedded system on the simulated clock and observes it.
"""
