"""Placeholder until the console lands."""
from flask import Blueprint


def make_blueprint(services):
    return Blueprint("console", __name__)
