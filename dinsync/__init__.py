"""dinsync: warehouse-native reverse ETL."""

__version__ = "0.1.0"
