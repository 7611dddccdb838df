"""The bot's rules: reading plans, commands, onboarding, delivery, and the Bot facade."""
