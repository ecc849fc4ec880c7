"""Placeholder, replaced below."""


class LitePredictor:
    pass
