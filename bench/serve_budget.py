"""``dcml-bot serve`` with the Slack messenger's call budget taken from the environment.

Run: BENCH_SLACK_CALL_INTERVAL=0 BENCH_SLACK_PER_CHANNEL_INTERVAL=0 \
     .venv/bin/python bench/serve_budget.py serve

The same process as the console script (``dcml_bot.cli.main``), except that the module defaults
``CALL_INTERVAL`` / ``PER_CHANNEL_INTERVAL`` of ``dcml_bot.platforms.slack`` are replaced first, so
a bench can fan out to 10,000 members against a fake without waiting out Slack's real budget.
Pacing only sleeps between calls; it holds no memory worth measuring.
"""

from __future__ import annotations

import os

from dcml_bot import cli
from dcml_bot.platforms import slack

if __name__ == "__main__":
    for name in ("CALL_INTERVAL", "PER_CHANNEL_INTERVAL"):
        value = os.environ.get(f"BENCH_SLACK_{name}")
        if value is not None:
            setattr(slack, name, float(value))
    cli.main()
