"""``dcml-bot serve`` with the Slack messenger's pacing lifted, for benches against a fake.

Run: BENCH_SLACK_UNPACED=1 .venv/bin/python bench/serve_budget.py serve

The same process as the console script (``dcml_bot.cli.main``), except that with
``BENCH_SLACK_UNPACED=1`` every Slack method starts at its ceiling and the per-channel spacing is
0, so a bench can fan out to 10,000 members against a fake without waiting out Slack's real
limits. Pacing only sleeps between calls; it holds no memory worth measuring.
"""

from __future__ import annotations

import os

from dcml_bot import cli
from dcml_bot.platforms.slack import messenger as slack_messenger

if __name__ == "__main__":
    if os.environ.get("BENCH_SLACK_UNPACED") == "1":
        slack_messenger.RATES = {method: (1e6, 1e6) for method in slack_messenger.RATES}
        slack_messenger.PER_CHANNEL_INTERVAL = 0.0
    cli.main()
