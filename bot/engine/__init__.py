"""The reply engine: conversation memory and batched generation. Imports neither Flask, telegram nor requests."""
