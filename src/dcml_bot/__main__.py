"""Run the CLI with ``python -m dcml_bot``."""

from dcml_bot.cli import main

main()
