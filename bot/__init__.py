"""Wavepilot's Slack bot (slack-bolt). Built in the Slack bot issue."""
