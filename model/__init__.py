"""The author-conditioned character LSTM, its vocabulary and its artifact format.

This package imports only torch and numpy (and `talklike.errors`), so a server that loads an
artifact never needs the training code.
"""
