"""The version of dreamstyle (one place; the package and the recipes read it)."""

__version__ = "0.2.0"
