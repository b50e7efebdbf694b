"""The transports: each parses its platform's input, calls the conversation layer and renders the answer."""
