"""The tests' and the benches' fakes at the wire, one harness for both.

- ``fakes.api``: ``FakeAPI`` (a threaded fake HTTP server on port 0), ``Reply``/``Handler``,
  ``running`` (a service under uvicorn), ``TokenBucket`` (a fake's rate limit).
- ``fakes.slack``: the fake Slack Web API, signed requests, a running bot with Slack.
- ``fakes.feishu``: the fake Feishu Open Platform, encryption and signing, long-connection frames.
- ``fakes.browser``: the local lab in a ``serve`` child, and Chromium through Playwright.

Import the modules themselves (``from fakes.slack import FakeSlack``); nothing is re-exported.
"""
