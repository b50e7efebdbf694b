"""The serving side, in floors: `infra/` (settings, stores, inbox, logging, model source) under `engine/` (the
reply engine) under `conversation/` (the chat protocol) under `adapters/` (Messenger, Telegram, console,
terminal) under `app/` (the Flask factory and the serving commands). Imports `model/`, never `training/`."""
