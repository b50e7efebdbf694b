"""Offline side of talklike: importers, corpus, dataset, trainer, evaluation, export."""
