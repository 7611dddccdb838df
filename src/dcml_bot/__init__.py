"""dcml-bot: a lab's Markdown reading list as a reading programme in Slack and Feishu/Lark."""

__version__ = "0.1.0"
