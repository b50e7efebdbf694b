"""The serving side: the reply engine (`bot.engine`), conversation stores (`bot.stores`), terminal
commands (`bot.commands`) and, later, the platform adapters. Imports `model/`, never `training/`."""
