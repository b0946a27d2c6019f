"""Tabular adapters (pandas): the customer file reader."""

from notibot.adapters.tabular.reader import PandasCustomerFileReader

__all__ = ["PandasCustomerFileReader"]
