"""Attio destination (People and Companies); see `destination.py` for the delivery rules,
`schema.py` for the pre-flight check and `values.py` for the value forms per attribute type."""
from .destination import COMPANIES, PEOPLE, AttioDestination, AttioSettings
from .schema import AttributeInfo, Schema, check_mapping

__all__ = ["COMPANIES", "PEOPLE", "AttioDestination", "AttioSettings", "AttributeInfo", "Schema", "check_mapping"]
