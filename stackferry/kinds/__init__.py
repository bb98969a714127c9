"""Resource kinds, one small declarative module each; ``catalog.py`` lists them."""
